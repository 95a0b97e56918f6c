"""``--shards N`` on one Redis server: the key layout, enqueueing across shards, a worker reading
every shard's stream together, and the requests it read past its room given back at once."""

import json

import attrs
import pytest
from redis.crc import key_slot

import livecall
from livecall.cli import run
from livecall_redis import DEFAULT_EVENTS, DEFAULT_REQUESTS, WatchRequest, WorkerSettings, enqueue
from livecall_redis._settings import DEFAULT_DEAD
from livecall_redis._sharded import RequestStreams
from livecall_redis._shards import every_shard, qualify, shard_for, shard_keys, split

from .conftest import allowing
from .test_campaign import wait_for

#: What the simulated Phonic conversation says, line by line, once each.
LINES = [
    "Hello! Thanks for calling Sunrise Dental, how can I help you today?",
    "Hi, I'd like to book",
    "Hi, I'd like to book a cleaning for next week.",
    "Of course! I have Tuesday at 10 am or Thursday at 2 pm.",
    "Tuesday at 10 works.",
    "Great, you're booked for Tuesday at 10 am. See you then!",
]


def layout(shards: int = 1, cluster: bool = False) -> WorkerSettings:
    return WorkerSettings(redis_url="redis://127.0.0.1:1/0", shards=shards, cluster=cluster)


def test_one_shard_off_a_cluster_keeps_the_names_of_every_deployment_so_far():
    [keys] = every_shard(layout())
    assert (keys.requests, keys.events, keys.dead_letter) == (DEFAULT_REQUESTS, DEFAULT_EVENTS, DEFAULT_DEAD)
    assert keys.fence("1-0") == "livecall:requests:fence:1-0"
    assert keys.written_keys("conv_1") == "livecall:events:keys:conv_1"
    assert keys.fenced == "livecall:events:fenced"
    assert qualify(1, 0, "1-0") == "1-0" and split(1, "1-0") == (0, "1-0")


@pytest.mark.parametrize(("shards", "cluster"), [(3, False), (1, True), (4, True)])
def test_every_key_of_a_shard_hashes_to_one_slot_and_the_shards_to_different_ones(shards, cluster):
    slots = []
    for keys in every_shard(layout(shards, cluster)):
        assert keys.requests == f"livecall:requests:{{{keys.index}}}"
        names = [keys.requests, keys.fence("1-0"), keys.events, keys.written_keys("conv_{x}")]
        names += [keys.fenced, keys.dead_letter]
        assert {key_slot(name.encode()) for name in names} == {key_slot(keys.requests.encode())}
        slots.append(key_slot(keys.requests.encode()))
    assert len(set(slots)) == shards


def test_a_request_id_names_its_shard_when_there_are_several():
    assert qualify(3, 2, "1717-0") == "2/1717-0"
    assert split(3, "2/1717-0") == (2, "1717-0")
    for wrong in ("1717-0", "3/1717-0", "x/1717-0", "2/"):
        with pytest.raises(ValueError):
            split(3, wrong)
    with pytest.raises(ValueError):
        shard_keys(layout(3), 3)


def test_a_name_with_a_brace_is_refused_once_names_carry_hash_tags():
    with pytest.raises(livecall.ConfigurationError, match="braces"):
        WorkerSettings(redis_url="redis://h/0", shards=2, events="app:{events}")
    with pytest.raises(livecall.ConfigurationError, match="braces"):
        WorkerSettings(redis_url="redis://h/0", cluster=True, requests="{app}:requests")
    WorkerSettings(redis_url="redis://h/0", events="app:{events}")  # one shard, no cluster: as before


def spread_simulators(livecall_simulator, shards: int, per_shard: int, **options):
    """Simulated Phonic calls, ``per_shard`` of them going to each shard (the shard follows from the
    request's fields, its simulator's URL among them)."""
    kept: dict[int, list] = {index: [] for index in range(shards)}
    attempt = 0
    while any(len(sims) < per_shard for sims in kept.values()):
        attempt += 1
        assert attempt < 50 * shards * per_shard, "the requests never spread over the shards"
        sim = livecall_simulator("phonic", conversation_id=f"conv_shard-{attempt}", **options)
        request = WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url)
        index = shard_for(request.fields(), shards)
        if len(kept[index]) < per_shard:
            kept[index].append(sim)
    return kept


def events_by_call(client, stream: str) -> dict[str, list[dict]]:
    calls: dict[str, list[dict]] = {}
    for _, fields in client.xrange(stream):
        calls.setdefault(fields["call_id"], []).append(json.loads(fields["event"]))
    return calls


def test_enqueue_spreads_requests_over_the_shards_and_the_same_request_always_goes_to_the_same_one(
    redis_client,
):
    ids = [
        enqueue(redis_client, WatchRequest("phonic", conversation_id=f"conv_{n}"), shards=3)
        for n in range(30)
    ]
    shards = [split(3, request_id)[0] for request_id in ids]
    assert set(shards) == {0, 1, 2}
    for index in range(3):
        name = f"{DEFAULT_REQUESTS}:{{{index}}}"
        assert redis_client.xlen(name) == shards.count(index)
    assert not redis_client.exists(DEFAULT_REQUESTS)
    again = enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_7"), shards=3)
    assert split(3, again)[0] == shards[7]


def test_livecall_enqueue_with_shards_prints_the_shard_and_the_entry(redis_server, redis_client, capsys):
    args = ["enqueue", "phonic", "--redis", redis_server.url, "--shards", "3", "--conversation-id", "conv_9"]
    assert run(args) == 0
    index, entry_id = split(3, capsys.readouterr().out.strip())
    [(stored, fields)] = redis_client.xrange(f"{DEFAULT_REQUESTS}:{{{index}}}")
    assert stored == entry_id and fields["conversation_id"] == "conv_9"


def test_livecall_worker_and_enqueue_refuse_cluster_on_a_server_that_is_not_one(redis_server, capsys):
    assert run(["enqueue", "phonic", "--redis", redis_server.url, "--cluster", "--conversation-id", "c"]) == 2
    assert "is not a cluster" in capsys.readouterr().err
    assert run(["worker", "--redis", redis_server.url, "--cluster"]) == 2
    assert "is not a cluster" in capsys.readouterr().err


def test_a_worker_reads_every_shard_together_and_writes_each_call_to_its_shards_events_stream(
    redis_client, livecall_simulator, running_worker, settings
):
    spread = spread_simulators(livecall_simulator, 3, 2, pace=0.05)
    sims = [sim for sims in spread.values() for sim in sims]
    worker = running_worker(attrs.evolve(settings, shards=3, calls=8, allowed_urls=allowing(*sims)))
    for sim in sims:
        request = WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url)
        enqueue(redis_client, request, shards=3)
    keys = every_shard(worker.settings)
    wait_for(lambda: sum(redis_client.xlen(shard.requests) for shard in keys) == 0, 30, "every call done")
    for shard in keys:
        calls = events_by_call(redis_client, shard.events)
        assert sorted(calls) == sorted(sim.credentials["conversation_id"] for sim in spread[shard.index])
        for events in calls.values():
            assert [event["text"] for event in events if event["event"] == "transcript"] == LINES
            assert events[-1]["event"] == "conversation_ended"
        assert redis_client.xpending(shard.requests, settings.group)["pending"] == 0
    assert not redis_client.exists(DEFAULT_EVENTS)
    assert worker.stats.events_written == sum(redis_client.xlen(shard.events) for shard in keys)


def test_requests_read_past_the_room_are_given_back_at_once_as_if_never_delivered(redis_client, settings):
    sharded = attrs.evolve(settings, shards=3)
    client, reader = sharded.redis_client(), sharded.redis_client(decode=False)
    streams = RequestStreams(sharded, client, reader)
    try:
        streams.prepare()
        for index in range(3):  # one request on each shard, more than the room of one
            redis_client.xadd(f"{DEFAULT_REQUESTS}:{{{index}}}", {"provider": "phonic", "n": str(index)})
        [(taken, _)] = streams.read("first", 1, 100)
        back = [request_id for request_id, _ in streams.claim("second", 10)]  # no lease to wait out
        holders = {}
        for index in range(3):
            stream = f"{DEFAULT_REQUESTS}:{{{index}}}"
            for entry in redis_client.xpending_range(stream, settings.group, "-", "+", 5):
                holder = (entry["consumer"], entry["times_delivered"])
                holders[qualify(3, index, entry["message_id"])] = holder
        assert len(back) == 2
        assert holders == {taken: ("first", 1), **{request_id: ("second", 1) for request_id in back}}
    finally:
        client.close()
        reader.close()


def test_a_request_that_cannot_be_watched_goes_to_its_own_shards_dead_letters(
    redis_client, running_worker, settings, caplog
):
    caplog.set_level("WARNING", logger="livecall.redis")
    entry_id = redis_client.xadd(f"{DEFAULT_REQUESTS}:{{1}}", {"provider": "nope"})
    running_worker(attrs.evolve(settings, shards=3))
    dead = f"{DEFAULT_DEAD}:{{1}}"
    wait_for(lambda: redis_client.xlen(dead) == 1, 10, "the request dead-lettered")
    [(_, letter)] = redis_client.xrange(dead)
    assert letter["request_id"] == f"1/{entry_id}" and letter["provider"] == "nope"
    assert not redis_client.exists(DEFAULT_DEAD)
    assert f"request 1/{entry_id} moved to {dead}" in caplog.text


def test_the_scripts_of_several_shards_answer_only_what_names_a_request(redis_client, settings):
    streams = RequestStreams(attrs.evolve(settings, shards=2), redis_client, redis_client)
    other = streams.scripts.on(redis_client)
    assert other.client is redis_client
    assert other.fence("1/5-0") == "livecall:requests:{1}:fence:5-0"
    with pytest.raises(AttributeError, match="belongs to one shard"):
        other.events  # noqa: B018  (each shard has its own)
    with pytest.raises(ValueError, match="SHARD/ID"):
        other.finish("5-0", 1)
