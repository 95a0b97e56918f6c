"""``livecall status``: requests waiting, calls held per worker, dead letters, the events stream."""

import json
import re

import attrs
import pytest

import livecall
from livecall.cli import run
from livecall_redis import (
    DEFAULT_DEAD,
    DEFAULT_EVENTS,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    WatchRequest,
    enqueue,
)

from .conftest import allowing
from .test_campaign import wait_for
from .test_commands import socket_nobody_listens_on


def status(redis_server, capsys, *options):
    assert run(["status", "--redis", redis_server.url, *options]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def status_json(redis_server, capsys, *options):
    out = status(redis_server, capsys, "--format", "json", *options)
    assert out.count("\n") == 1
    return json.loads(out)


def test_before_any_worker_every_request_waits(redis_server, redis_client, capsys):
    for number in range(3):
        enqueue(redis_client, WatchRequest("phonic", conversation_id=f"conv_{number}"))
    shown = status_json(redis_server, capsys)
    assert shown == {
        "requests": DEFAULT_REQUESTS,
        "group": DEFAULT_GROUP,
        "group_exists": False,
        "waiting": 3,
        "held": 0,
        "holders": [],
        "dead_letter": DEFAULT_DEAD,
        "dead_letters": 0,
        "newest_dead_letters": [],
        "events": DEFAULT_EVENTS,
        "events_length": 0,
        "newest_event_age": None,
        "shards": [  # one, as ever: the same figures, its streams' own names
            {
                "shard": 0,
                "requests": DEFAULT_REQUESTS,
                "group_exists": False,
                "waiting": 3,
                "held": 0,
                "holders": [],
                "dead_letter": DEFAULT_DEAD,
                "dead_letters": 0,
                "events": DEFAULT_EVENTS,
                "events_length": 0,
                "newest_event_age": None,
            }
        ],
    }
    assert status(redis_server, capsys) == (
        "requests      livecall:requests (no group livecall-workers yet): 3 waiting, 0 held\n"
        "workers       none holding a call\n"
        "dead letters  livecall:requests:dead: 0\n"
        "events        livecall:events: 0 entries, empty\n"
    )


def test_status_shows_who_holds_what_what_waits_what_died_and_the_events(
    redis_server, redis_client, livecall_simulator, running_worker, settings, capsys
):
    """A worker holding two calls, a dead worker's request, one waiting, two dead letters."""
    redis_client.xadd(DEFAULT_REQUESTS, {"provider": "skype", "conversation_id": "conv_skype"})
    refused = livecall_simulator("phonic", "auth", conversation_id="conv_refused")
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_refused", url=refused.url))
    sims = [livecall_simulator("phonic", "long", pace=0.5, conversation_id=f"conv_long{n}") for n in (1, 2)]
    for sim in sims:
        enqueue(
            redis_client,
            WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url),
        )
    worker = running_worker(
        attrs.evolve(settings, calls=2, max_deliveries=1, allowed_urls=allowing(refused, *sims))
    )
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 2, 20, "two requests dead-lettered")
    wait_for(lambda: worker.stats.calls_held == 2, 20, "two calls held")
    # A worker that died holding a request, ten minutes ago; then one request nobody took yet.
    gone_id = redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_gone"})
    redis_client.xreadgroup(DEFAULT_GROUP, "gone:1", {DEFAULT_REQUESTS: ">"}, count=1)
    redis_client.xclaim(DEFAULT_REQUESTS, DEFAULT_GROUP, "gone:1", 0, [gone_id], idle=600_000)
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_waiting"))
    wait_for(lambda: redis_client.xlen(DEFAULT_EVENTS) > 0, 10, "events written")

    shown = status_json(redis_server, capsys, "--dead-letters", "5")
    assert shown["group_exists"] is True
    assert (shown["waiting"], shown["held"]) == (1, 3)
    holders = {holder["consumer"]: holder for holder in shown["holders"]}
    assert holders.keys() == {worker.consumer, "gone:1"}
    assert holders[worker.consumer]["calls"] == 2
    assert holders[worker.consumer]["oldest_lease_age"] < settings.lease  # renewed every second
    assert holders["gone:1"]["calls"] == 1
    assert holders["gone:1"]["oldest_lease_age"] >= 600
    assert shown["dead_letters"] == 2
    newest, oldest = shown["newest_dead_letters"]
    assert newest["provider"] == "phonic" and newest["call_id"] == "conv_refused"
    assert newest["reason"] == "delivered too many times" and newest["deliveries"] == 2
    assert newest["last_error"].startswith("AuthenticationError: ")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", newest["last_error_at"])
    assert oldest["provider"] == "skype" and oldest["call_id"] is None
    assert "unknown provider" in oldest["reason"] and oldest["last_error"] is None
    assert shown["events_length"] == redis_client.xlen(DEFAULT_EVENTS)
    assert 0 <= shown["newest_event_age"] < 10

    text = status(redis_server, capsys)
    assert "livecall:requests (group livecall-workers): 1 waiting, 3 held\n" in text
    assert re.search(
        rf"^worker +{re.escape(worker.consumer)}: 2 calls, oldest lease renewed \d+\.\d s ago$", text, re.M
    )
    assert re.search(r"^worker +gone:1: 1 call, oldest lease renewed 6\d\d\.\d s ago$", text, re.M)
    assert "dead letters  livecall:requests:dead: 2\n" in text
    assert (
        f"  {newest['id']}, request {newest['request_id']}, phonic, call conv_refused, 2 deliveries\n" in text
    )
    assert "    reason: delivered too many times\n" in text
    assert f"    last error (at {newest['last_error_at']}): AuthenticationError: " in text


def test_status_shows_no_secret_and_nothing_that_drives_the_terminal(redis_server, redis_client, capsys):
    """A dead letter's fields are shown only by name, and escaped: whoever enqueues chose them."""
    secret = "lct_" + "kept-by-mistake-0001"
    redis_client.xadd(
        DEFAULT_DEAD,
        {
            "provider": "hiya",
            "request_id": "1-0",
            "conversation_token": secret,
            "user_id": "u1",
            "reason": "bad \x1b]52;c;cHduZWQ=\x07 news\nforged line",
            "deliveries": "1",
        },
    )
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0", mkstream=True)
    redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "c"})
    redis_client.xreadgroup(DEFAULT_GROUP, "evil\x1b[2J:1", {DEFAULT_REQUESTS: ">"})
    text = status(redis_server, capsys)
    assert secret not in text and "\x1b" not in text and "\x07" not in text
    assert "    reason: bad \\x1b]52;c;cHduZWQ=\\x07 news\\nforged line\n" in text
    assert "worker        evil\\x1b[2J:1: 1 call" in text
    shown = status_json(redis_server, capsys)
    assert secret not in json.dumps(shown)
    [letter] = shown["newest_dead_letters"]
    assert letter["call_id"] == "1-0"  # a Hiya call is named by its request, as on the events stream
    assert set(letter) == {
        "id",
        "request_id",
        "provider",
        "call_id",
        "reason",
        "last_error",
        "last_error_at",
        "deliveries",
    }


def test_the_waiting_requests_are_counted_where_redis_tells_no_lag(redis_server, redis_client, capsys):
    """Redis 7 tells no lag once an entry not yet delivered was deleted (nor does Redis 6.2 ever):
    the stream's length less the requests held."""
    ids = [
        redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": f"c{n}"})
        for n in range(4)
    ]
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0")
    redis_client.xreadgroup(DEFAULT_GROUP, "w:1", {DEFAULT_REQUESTS: ">"}, count=1)
    redis_client.xdel(DEFAULT_REQUESTS, ids[2])
    [group] = redis_client.xinfo_groups(DEFAULT_REQUESTS)
    if group.get("lag") is not None:
        pytest.skip("this Redis tells the lag even so")
    shown = status_json(redis_server, capsys)
    assert (shown["waiting"], shown["held"]) == (2, 1)


def test_status_reads_the_streams_it_is_told(redis_server, redis_client, capsys):
    enqueue(redis_client, WatchRequest("phonic", conversation_id="c"), stream="team:requests")
    redis_client.xadd("team:events", {"call_id": "c", "key": "k", "event": "{}"})
    shown = status_json(
        redis_server,
        capsys,
        "--requests",
        "team:requests",
        "--group",
        "team",
        "--events",
        "team:events",
        "--dead-letter",
        "team:dead",
    )
    assert (shown["requests"], shown["group"], shown["events"], shown["dead_letter"]) == (
        "team:requests",
        "team",
        "team:events",
        "team:dead",
    )
    assert shown["waiting"] == 1 and shown["events_length"] == 1


def test_status_with_an_unreachable_redis_is_exit_status_1(capsys):
    port = socket_nobody_listens_on()
    assert run(["status", "--redis", f"redis://default:s3cret-pass@127.0.0.1:{port}/0"]) == 1
    assert capsys.readouterr().err == (
        f"livecall: error: could not read the status: Redis at redis://127.0.0.1:{port}/0 failed "
        "(ConnectionError)\n"
    )
    assert livecall.ExitStatus.FAILURE == 1
