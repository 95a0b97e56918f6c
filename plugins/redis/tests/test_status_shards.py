"""``livecall status`` and ``livecall requeue`` with ``--shards 3``, on one Redis server and on a
Redis Cluster (three local masters): every shard read, shown together and each apart; dead letters
named ``SHARD/ID`` and put back on their own shard's requests stream."""

import json
import re

import attrs

import livecall
from livecall.cli import run
from livecall_redis import (
    DEFAULT_DEAD,
    DEFAULT_EVENTS,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    WatchRequest,
    WorkerSettings,
    enqueue,
)
from livecall_redis._sharded import RequestStreams
from livecall_redis._shards import every_shard, shard_keys, split

from .conftest import allowing
from .test_campaign import wait_for
from .test_commands import run_worker_until
from .test_shards import spread_simulators

SHARDS = ["--shards", "3"]


def command(url, capsys, *args):
    """A ``livecall`` command on the Redis at ``url``: its exit status, stdout and stderr."""
    status = run([args[0], "--redis", url, *args[1:]])
    out, err = capsys.readouterr()
    return status, out, err


def status_json(url, capsys, *options):
    status, out, err = command(url, capsys, "status", "--format", "json", *options)
    assert (status, err, out.count("\n")) == (0, "", 1)
    return json.loads(out)


def status_text(url, capsys, *options):
    status, out, err = command(url, capsys, "status", *options)
    assert (status, err) == (0, "")
    return out


def bury(client, keys, conversation_id: str, request_id: str, at: str = "*") -> str:
    """A dead letter of a Phonic request on the shard of ``keys``, as a worker writes one; ``at``
    its entry id (two streams' entries added in the same millisecond have equal ids)."""
    return client.xadd(
        keys.dead_letter,
        {
            "provider": "phonic",
            "conversation_id": conversation_id,
            "request_id": request_id,
            "reason": "delivered too many times",
            "deliveries": "6",
            "consumer": "h:1",
        },
        id=at,
    )


def hold(client, keys, consumer: str, idle_ms: int) -> str:
    """A request on the shard of ``keys`` held by ``consumer`` (a worker gone), idle that long."""
    entry_id = client.xadd(keys.requests, {"provider": "phonic", "conversation_id": f"conv_{consumer}"})
    client.xreadgroup(DEFAULT_GROUP, consumer, {keys.requests: ">"}, count=1)
    client.xclaim(keys.requests, DEFAULT_GROUP, consumer, 0, [entry_id], idle=idle_ms)
    return entry_id


def test_status_with_shards_shows_every_shard_together_and_each_apart(
    redis_server, redis_client, livecall_simulator, running_worker, settings, capsys
):
    """A ``--shards 3`` worker holding a call on each shard; a worker gone holding one request on
    shard 0 and one on shard 2; a request waiting on shard 1; a dead letter on shards 2 and 0."""
    spread = spread_simulators(livecall_simulator, 3, 1, scenario="long", pace=0.5)
    sims = [sim for sims in spread.values() for sim in sims]
    sharded = attrs.evolve(settings, shards=3, calls=3, allowed_urls=allowing(*sims))
    worker = running_worker(sharded)
    for sim in sims:
        enqueue(
            redis_client,
            WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url),
            shards=3,
        )
    keys = every_shard(sharded)
    wait_for(lambda: worker.stats.calls_held == 3, 20, "a call held on each shard")
    wait_for(lambda: all(redis_client.xlen(shard.events) for shard in keys), 10, "events on each shard")
    # The worker is full: what follows stays as it is put.
    hold(redis_client, keys[0], "gone:1", 600_000)
    hold(redis_client, keys[2], "gone:1", 300_000)
    redis_client.xadd(keys[1].requests, {"provider": "phonic", "conversation_id": "conv_waiting"})
    older = bury(redis_client, keys[2], "conv_dead2", "2/1-0", at="1700000000000-5")
    newer = bury(redis_client, keys[0], "conv_dead0", "0/2-0", at="1700000000001-0")

    shown = status_json(redis_server.url, capsys, *SHARDS)
    assert (shown["requests"], shown["dead_letter"], shown["events"]) == (
        DEFAULT_REQUESTS,
        DEFAULT_DEAD,
        DEFAULT_EVENTS,
    )
    assert shown["group_exists"] is True
    assert (shown["waiting"], shown["held"], shown["dead_letters"]) == (1, 5, 2)
    holders = {holder["consumer"]: holder for holder in shown["holders"]}
    assert holders.keys() == {worker.consumer, "gone:1"}
    assert holders[worker.consumer]["calls"] == 3
    assert holders[worker.consumer]["oldest_lease_age"] < settings.lease
    assert holders["gone:1"]["calls"] == 2 and holders["gone:1"]["oldest_lease_age"] >= 600
    assert [letter["id"] for letter in shown["newest_dead_letters"]] == [f"0/{newer}", f"2/{older}"]
    assert [letter["request_id"] for letter in shown["newest_dead_letters"]] == ["0/2-0", "2/1-0"]
    assert shown["events_length"] == sum(redis_client.xlen(shard.events) for shard in keys)
    assert 0 <= shown["newest_event_age"] < 10

    each = shown["shards"]
    assert [shard["shard"] for shard in each] == [0, 1, 2]
    assert [shard["requests"] for shard in each] == [shard.requests for shard in keys]
    assert [shard["dead_letter"] for shard in each] == [shard.dead_letter for shard in keys]
    assert [shard["events"] for shard in each] == [shard.events for shard in keys]
    assert [shard["group_exists"] for shard in each] == [True, True, True]
    assert [(shard["waiting"], shard["held"], shard["dead_letters"]) for shard in each] == [
        (0, 2, 1),
        (1, 1, 0),
        (0, 2, 1),
    ]
    assert all(shard["events_length"] > 0 and 0 <= shard["newest_event_age"] < 10 for shard in each)
    gone = [{h["consumer"]: h for h in shard["holders"]}.get("gone:1") for shard in each]
    assert gone[1] is None
    assert gone[0]["calls"] == 1 and gone[0]["oldest_lease_age"] >= 600
    assert gone[2]["calls"] == 1 and 300 <= gone[2]["oldest_lease_age"] < 600
    # The worker's own count of the requests waiting, on every shard, is the same.
    client, reader = sharded.redis_client(), sharded.redis_client(decode=False)
    try:
        assert RequestStreams(sharded, client, reader).lag() == shown["waiting"] == 1
    finally:
        client.close()
        reader.close()

    text = status_text(redis_server.url, capsys, *SHARDS, "--dead-letters", "1")
    assert text.startswith(
        "requests      livecall:requests:{0} to {2} (group livecall-workers): 1 waiting, 5 held\n"
    )
    assert re.search(
        rf"^worker +{re.escape(worker.consumer)}: 3 calls, oldest lease renewed \d+\.\d s ago$", text, re.M
    )
    assert re.search(r"^worker +gone:1: 2 calls, oldest lease renewed 6\d\d\.\d s ago$", text, re.M)
    assert "dead letters  livecall:requests:dead:{0} to {2}: 2 (the newest 1 below)\n" in text
    assert f"  0/{newer}, request 0/2-0, phonic, call conv_dead0, 6 deliveries\n" in text
    assert f"2/{older}" not in text
    assert re.search(
        r"^events        livecall:events:\{0\} to \{2\}: \d+ entries, newest written \d+\.\d s ago$",
        text,
        re.M,
    )
    lines = text.splitlines()
    assert [line[:14] for line in lines[-3:]] == ["shard 0       ", "shard 1       ", "shard 2       "]
    for line, (waiting, held, dead) in zip(
        lines[-3:], [(0, 2, "1 dead letter"), (1, 1, "0 dead letters"), (0, 2, "1 dead letter")]
    ):
        assert re.fullmatch(
            rf"shard \d +{waiting} waiting, {held} held, {dead}, \d+ events, newest written \d+\.\d s ago",
            line,
        )


def test_status_with_shards_before_the_workers_and_with_the_group_on_some_shards(
    redis_server, redis_client, capsys
):
    for number in range(6):
        enqueue(redis_client, WatchRequest("phonic", conversation_id=f"conv_{number}"), shards=3)
    waiting = [redis_client.xlen(f"{DEFAULT_REQUESTS}:{{{index}}}") for index in range(3)]
    shown = status_json(redis_server.url, capsys, *SHARDS)
    assert (shown["group_exists"], shown["waiting"], shown["held"], shown["holders"]) == (False, 6, 0, [])
    assert [shard["waiting"] for shard in shown["shards"]] == waiting
    assert shown["newest_event_age"] is None
    text = status_text(redis_server.url, capsys, *SHARDS)
    assert text == (
        "requests      livecall:requests:{0} to {2} (no group livecall-workers yet): 6 waiting, 0 held\n"
        "workers       none holding a call\n"
        "dead letters  livecall:requests:dead:{0} to {2}: 0\n"
        "events        livecall:events:{0} to {2}: 0 entries, empty\n"
        + "".join(
            f"shard {index}       no group yet: {count} waiting, 0 held, 0 dead letters, 0 events\n"
            for index, count in enumerate(waiting)
        )
    )
    redis_client.xgroup_create(f"{DEFAULT_REQUESTS}:{{0}}", DEFAULT_GROUP, id="0")
    text = status_text(redis_server.url, capsys, *SHARDS)
    assert "(group livecall-workers on 1 of 3 shards): 6 waiting, 0 held\n" in text
    assert f"\nshard 0       {waiting[0]} waiting, 0 held" in text
    assert f"\nshard 1       no group yet: {waiting[1]} waiting" in text


def test_status_and_requeue_refuse_names_and_modes_the_layout_cannot_take(redis_server, capsys):
    for args in (["status"], ["requeue", "--all"]):
        status, out, err = command(redis_server.url, capsys, *args, *SHARDS, "--requests", "app:{r}")
        assert (status, out) == (livecall.ExitStatus.USAGE, "")
        assert "--requests 'app:{r}': with --shards or --cluster, a name holds no braces" in err
        status, out, err = command(redis_server.url, capsys, *args, "--cluster")
        assert (status, out) == (livecall.ExitStatus.USAGE, "")
        assert "is not a cluster" in err


def test_a_dead_letter_of_a_shard_named_as_status_shows_it_is_requeued_on_its_shard_and_watched(
    redis_server, redis_client, livecall_simulator, running_worker, settings, capsys
):
    """Dead-lettered by a ``--shards 3`` worker that does not allow its URL; its id read from
    ``status``; requeued, it is on its own shard again, and a worker that allows it watches it."""
    [sim] = spread_simulators(livecall_simulator, 3, 1)[1]
    sharded = attrs.evolve(settings, shards=3)
    request = WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url)
    index, entry_id = split(3, enqueue(redis_client, request, shards=3))
    keys = shard_keys(sharded, 1)
    assert index == 1
    # A worker that allows no simulator: the request dies, on its shard.
    run_worker_until(sharded, lambda: redis_client.xlen(keys.dead_letter) == 1)
    [letter] = status_json(redis_server.url, capsys, *SHARDS)["newest_dead_letters"]
    assert letter["request_id"] == f"1/{entry_id}" and letter["id"].startswith("1/")

    status, out, err = command(redis_server.url, capsys, "requeue", *SHARDS, letter["id"])
    assert (status, err) == (0, "")
    [(new_id, fields)] = redis_client.xrange(keys.requests)
    assert out == f"1/{new_id}\n"
    assert fields == request.fields()
    assert [redis_client.xlen(shard.dead_letter) for shard in every_shard(sharded)] == [0, 0, 0]
    assert [redis_client.xlen(shard.requests) for shard in every_shard(sharded)] == [0, 1, 0]

    running_worker(attrs.evolve(sharded, allowed_urls=allowing(sim)))
    wait_for(lambda: redis_client.xlen(keys.requests) == 0, 20, "the requeued call watched to its end")
    events = [json.loads(fields["event"])["event"] for _, fields in redis_client.xrange(keys.events)]
    assert events[-1] == "conversation_ended"


def test_requeue_with_shards_takes_shard_ids_and_all_of_every_shard(redis_server, redis_client, capsys):
    layout = every_shard(WorkerSettings(redis_url=redis_server.url, shards=3))
    letters = {index: bury(redis_client, layout[index], f"conv_{index}", f"{index}/1-0") for index in (0, 2)}
    status, out, err = command(
        redis_server.url,
        capsys,
        "requeue",
        *SHARDS,
        letters[0],  # no shard
        f"3/{letters[0]}",  # no such shard
        f"1/{letters[0]}",  # shard 0's letter, not shard 1's
        f"0/{letters[0]}",
    )
    assert status == livecall.ExitStatus.FAILURE
    [(new_id, fields)] = redis_client.xrange(layout[0].requests)
    assert out == f"0/{new_id}\n" and fields["conversation_id"] == "conv_0"
    not_an_id = "not SHARD/ID, a shard from 0 to 2 (such as 0/1717171717171-0)"
    assert err == (
        f"livecall: error: dead letter {letters[0]} not requeued: {not_an_id}\n"
        f"livecall: error: dead letter 3/{letters[0]} not requeued: {not_an_id}\n"
        f"livecall: error: dead letter 1/{letters[0]} not requeued: no such dead letter\n"
    )
    # Without --shards, a SHARD/ID says what is missing.
    status, out, err = command(redis_server.url, capsys, "requeue", f"2/{letters[2]}")
    assert (status, out) == (livecall.ExitStatus.FAILURE, "")
    assert err.endswith("not an entry id (such as 1717171717171-0): SHARD/ID needs the workers' --shards\n")

    bury(redis_client, layout[1], "conv_1", "1/1-0")
    status, out, err = command(redis_server.url, capsys, "requeue", *SHARDS, "--all")
    assert (status, err) == (0, "")
    [(on_1, _)] = redis_client.xrange(layout[1].requests)
    [(on_2, fields)] = redis_client.xrange(layout[2].requests)
    assert out.split() == [f"1/{on_1}", f"2/{on_2}"] and fields["conversation_id"] == "conv_2"
    assert [redis_client.xlen(keys.dead_letter) for keys in layout] == [0, 0, 0]
    assert not redis_client.exists(DEFAULT_REQUESTS, DEFAULT_DEAD)


def test_status_and_requeue_on_the_cluster(redis_cluster, cluster_client, capsys):
    """``--cluster --shards 3``: each shard's streams on the node holding its slot, each read
    there (ages on that node's clock), and each dead letter requeued on its own shard."""
    url = redis_cluster.url
    keys = every_shard(WorkerSettings(redis_url=url, cluster=True, shards=3))
    for shard in keys:
        cluster_client.xgroup_create(shard.requests, DEFAULT_GROUP, id="0", mkstream=True)
    hold(cluster_client, keys[0], "w:1", 5_000)
    hold(cluster_client, keys[2], "w:1", 50_000)
    for number in range(6):
        enqueue(cluster_client, WatchRequest("phonic", conversation_id=f"conv_{number}"), shards=3)
    letters = {
        index: bury(cluster_client, keys[index], f"conv_dead{index}", f"{index}/1-0", at=f"{index + 1}-0")
        for index in (0, 2)
    }
    cluster_client.xadd(keys[1].events, {"call_id": "c", "key": "k", "event": "{}"})
    on_cluster = [*SHARDS, "--cluster"]

    shown = status_json(url, capsys, *on_cluster)
    lengths = [cluster_client.xlen(shard.requests) for shard in keys]
    assert (shown["group_exists"], shown["waiting"], shown["held"]) == (True, 6, 2)
    [holder] = shown["holders"]
    assert (holder["consumer"], holder["calls"]) == ("w:1", 2)
    assert 50 <= holder["oldest_lease_age"] < 60
    assert [(shard["waiting"], shard["held"]) for shard in shown["shards"]] == [
        (lengths[0] - 1, 1),
        (lengths[1], 0),
        (lengths[2] - 1, 1),
    ]
    assert [shard["dead_letters"] for shard in shown["shards"]] == [1, 0, 1]
    assert [letter["id"] for letter in shown["newest_dead_letters"]] == [f"2/{letters[2]}", f"0/{letters[0]}"]
    assert [shard["events_length"] for shard in shown["shards"]] == [0, 1, 0]
    assert 0 <= shown["shards"][1]["newest_event_age"] < 10 and shown["newest_event_age"] is not None

    text = status_text(url, capsys, *on_cluster)
    assert text.startswith(
        "requests      livecall:requests:{0} to {2} (group livecall-workers): 6 waiting, 2 held\n"
    )
    assert text.splitlines()[-2].startswith("shard 1       ")
    # One shard on a cluster: the names still tagged, {0}, and no line of each shard.
    one = status_text(url, capsys, "--cluster")
    assert one.startswith(
        f"requests      livecall:requests:{{0}} (group livecall-workers): {lengths[0] - 1} waiting, 1 held\n"
    )
    assert "shard 0" not in one

    status, out, err = command(url, capsys, "requeue", *on_cluster, "--all")
    assert (status, err) == (0, "")
    printed = [split(3, request_id) for request_id in out.split()]
    assert [index for index, _ in printed] == [0, 2]
    for index, entry_id in printed:
        [(_, fields)] = cluster_client.xrange(keys[index].requests, entry_id, entry_id)
        assert fields["conversation_id"] == f"conv_dead{index}"
        assert cluster_client.xlen(keys[index].dead_letter) == 0

    for args in (["status"], ["requeue", "--all"]):
        status, out, err = command(url, capsys, *args, *SHARDS)
        assert (status, out) == (livecall.ExitStatus.USAGE, "")
        assert "is a node of a cluster: give --cluster" in err
