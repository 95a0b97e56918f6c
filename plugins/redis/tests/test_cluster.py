"""Workers on a Redis Cluster (three local masters): ``--cluster --shards 3``.

Each shard's keys share one slot, so every script runs where its keys are;
the shards' slots are on different nodes, which the worker reads one at a
time.  Every event lands once on its call's shard's events stream, and a
call whose worker died is taken over by another, on the cluster too.
"""

import json
import os
import signal
import subprocess
import sys

import attrs
import pytest

from livecall.cli import run
from livecall_redis import WatchRequest, WorkerSettings, enqueue
from livecall_redis._shards import every_shard, split

from .conftest import allowing
from .test_campaign import wait_for
from .test_shards import LINES, spread_simulators

API_KEY = "sim-phonic-key"


@pytest.fixture
def cluster_settings(redis_cluster, cluster_client, monkeypatch) -> WorkerSettings:
    monkeypatch.setenv("PHONIC_API_KEY", API_KEY)
    return WorkerSettings(redis_url=redis_cluster.url, cluster=True, shards=3, calls=8, lease=3.0, renew=1.0)


def request_for(sim) -> WatchRequest:
    return WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url)


def done(client, settings: WorkerSettings) -> bool:
    """Every request acknowledged and deleted, on every shard."""
    return all(client.xlen(keys.requests) == 0 for keys in every_shard(settings))


def calls_on(client, stream: str) -> dict[str, list[tuple[str, dict]]]:
    """The entries of an events stream by call: each entry's key and event."""
    calls: dict[str, list[tuple[str, dict]]] = {}
    for _, fields in client.xrange(stream):
        calls.setdefault(fields["call_id"], []).append((fields["key"], json.loads(fields["event"])))
    return calls


def assert_each_call_once_on_its_shard(client, settings, spread) -> None:
    for keys in every_shard(settings):
        calls = calls_on(client, keys.events)
        assert sorted(calls) == sorted(sim.credentials["conversation_id"] for sim in spread[keys.index])
        for entries in calls.values():
            written = [key for key, _ in entries]
            assert len(written) == len(set(written)), "an event written twice"
            events = [event for _, event in entries]
            assert [event["text"] for event in events if event["event"] == "transcript"] == LINES
            assert events[-1]["event"] == "conversation_ended"
        assert client.xpending(keys.requests, settings.group)["pending"] == 0


def test_the_shards_of_a_cluster_sit_on_different_nodes_each_in_one_slot(cluster_client, cluster_settings):
    nodes = set()
    for keys in every_shard(cluster_settings):
        names = [keys.requests, keys.fence("1-0"), keys.events, keys.written_keys("conv_1"), keys.dead_letter]
        assert {cluster_client.keyslot(name) for name in names} == {cluster_client.keyslot(keys.requests)}
        nodes.add(cluster_client.get_node_from_key(keys.requests).name)
    assert len(nodes) >= 2


def test_a_sharded_worker_on_the_cluster_writes_every_event_once_to_its_calls_shard(
    cluster_client, cluster_settings, livecall_simulator, running_worker
):
    spread = spread_simulators(livecall_simulator, 3, 2, pace=0.05, api_key=API_KEY)
    sims = [sim for sims in spread.values() for sim in sims]
    settings = attrs.evolve(cluster_settings, allowed_urls=allowing(*sims))
    worker = running_worker(settings)
    for sim in sims:
        request_id = enqueue(cluster_client, request_for(sim), shards=3)
        assert split(3, request_id)[0] in spread and sim in spread[split(3, request_id)[0]]
    wait_for(lambda: done(cluster_client, settings), 30, "every call watched to its end")
    assert_each_call_once_on_its_shard(cluster_client, settings, spread)
    assert worker.stats.events_written == sum(
        cluster_client.xlen(keys.events) for keys in every_shard(settings)
    )


def test_livecall_enqueue_on_the_cluster_and_a_plain_client_told_to_use_cluster(
    redis_cluster, cluster_client, capsys
):
    args = ["enqueue", "phonic", "--redis", redis_cluster.url, "--conversation-id", "conv_c"]
    assert run([*args, "--cluster", "--shards", "3"]) == 0
    index, entry_id = split(3, capsys.readouterr().out.strip())
    [(stored, fields)] = cluster_client.xrange(f"livecall:requests:{{{index}}}")
    assert stored == entry_id and fields["conversation_id"] == "conv_c"
    assert run(args) == 2
    assert "give --cluster" in capsys.readouterr().err


def test_a_call_whose_worker_died_is_taken_over_by_another_on_the_cluster(
    cluster_client, cluster_settings, livecall_simulator, running_worker, tmp_path, caplog
):
    """The first worker, a ``livecall worker --cluster --shards 3`` process, is killed mid-call; a
    second takes each call over once its lease lapsed, and no event is lost or written twice."""
    spread = spread_simulators(livecall_simulator, 3, 1, pace=1.5, api_key=API_KEY)
    sims = [sim for sims in spread.values() for sim in sims]
    for sim in sims:
        enqueue(cluster_client, request_for(sim), shards=3)
    log = tmp_path / "first.log"
    first = start_worker(cluster_settings, sims, log)
    try:
        keys = every_shard(cluster_settings)
        wait_for(
            lambda: all(cluster_client.xlen(shard.events) > 0 for shard in keys) or first.poll() is not None,
            30,
            "the first worker writing for every call",
        )
        assert first.poll() is None, log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        caplog.set_level("INFO", logger="livecall.redis")
        second = running_worker(attrs.evolve(cluster_settings, allowed_urls=allowing(*sims)))
        wait_for(lambda: done(cluster_client, cluster_settings), 40, "the calls taken over and ended")
    finally:
        if first.poll() is None:
            first.kill()
            first.wait(10)
    assert "calls from livecall:requests:{0} to {2} on redis://" in log.read_text()
    assert_each_call_once_on_its_shard(cluster_client, cluster_settings, spread)
    assert caplog.text.count("took over call") == len(sims)
    assert all(len(sim.connections) >= 2 for sim in sims)
    assert second.stats.fenced_writes == 0


def start_worker(settings: WorkerSettings, sims, log) -> subprocess.Popen:
    env = dict(os.environ, PHONIC_API_KEY=API_KEY, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1")
    argv = [sys.executable, "-m", "livecall", "-v", "-p", "livecall_redis", "worker"]
    argv += ["--redis", settings.redis_url, "--cluster", "--shards", str(settings.shards)]
    argv += ["--calls", str(settings.calls), "--lease", str(settings.lease), "--renew", str(settings.renew)]
    for sim in sims:
        argv += ["--allow-url", f"phonic={sim.url}"]
    with log.open("wb") as output:
        return subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
