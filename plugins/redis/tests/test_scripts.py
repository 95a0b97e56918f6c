"""The Lua scripts against a real Redis: leases, fencing, idempotent writes, finishing."""

import json

from livecall_redis import DEFAULT_REQUESTS
from livecall_redis._scripts import DUPLICATE, STALE, WRITTEN

from .conftest import DEAD, EVENTS, GROUP, deliver


def take_over(redis_client, consumer, request_id):
    redis_client.xclaim(DEFAULT_REQUESTS, GROUP, consumer, 0, [request_id])


def events(redis_client):
    return [fields for _, fields in redis_client.xrange(EVENTS)]


def test_acquiring_raises_the_token_and_counts_deliveries(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    first = scripts.acquire("a", request_id)
    take_over(redis_client, "b", request_id)
    second = scripts.acquire("b", request_id)
    assert (first.token, first.deliveries) == (1, 1)
    assert (second.token, second.deliveries) == (2, 2)


def test_only_the_consumer_holding_a_request_acquires_it(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    assert scripts.acquire("b", request_id) is None
    assert redis_client.hget(scripts.fence(request_id), "token") is None


def test_renewing_resets_the_idle_time(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    assert scripts.renew("a", request_id, token, idle_ms=60_000)
    assert (
        redis_client.xpending_range(DEFAULT_REQUESTS, GROUP, "-", "+", 1)[0]["time_since_delivered"] >= 60_000
    )
    assert scripts.renew("a", request_id, token)
    assert (
        redis_client.xpending_range(DEFAULT_REQUESTS, GROUP, "-", "+", 1)[0]["time_since_delivered"] < 60_000
    )


def test_renewing_a_lease_taken_over_by_another_worker_fails(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    take_over(redis_client, "b", request_id)
    scripts.acquire("b", request_id)
    assert not scripts.renew("a", request_id, token)
    assert redis_client.xpending_range(DEFAULT_REQUESTS, GROUP, "-", "+", 1)[0]["consumer"] == "b"


def test_renewing_with_an_old_token_fails_even_for_the_same_consumer(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    scripts.acquire("a", request_id)
    assert not scripts.renew("a", request_id, old)


def test_a_write_with_an_older_fencing_token_is_rejected_and_counted(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    take_over(redis_client, "b", request_id)
    new = scripts.acquire("b", request_id).token
    assert scripts.write(old, request_id, "conv_1", "k1", '{"n": 1}', 1000, 60) == STALE
    assert scripts.write(new, request_id, "conv_1", "k2", '{"n": 2}', 1000, 60) == WRITTEN
    assert events(redis_client) == [{"call_id": "conv_1", "key": "k2", "event": '{"n": 2}'}]
    assert redis_client.get(scripts.fenced_counter) == "1"


def test_a_duplicate_key_is_skipped(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    outcomes = [scripts.write(token, request_id, "conv_1", key, json.dumps(key), 1000, 60) for key in "aba"]
    assert outcomes == [WRITTEN, WRITTEN, DUPLICATE]
    assert [fields["key"] for fields in events(redis_client)] == ["a", "b"]
    assert 0 < redis_client.ttl(scripts.written_keys("conv_1")) <= 60


def test_keys_are_per_call(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    assert scripts.write(token, request_id, "conv_1", "k", "{}", 1000, 60) == WRITTEN
    assert scripts.write(token, request_id, "conv_2", "k", "{}", 1000, 60) == WRITTEN


def test_finishing_acknowledges_and_deletes_the_request(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    assert scripts.finish(request_id, token)
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0
    assert redis_client.xpending(DEFAULT_REQUESTS, GROUP)["pending"] == 0
    assert not redis_client.exists(scripts.fence(request_id))


def test_a_stale_worker_cannot_finish_a_request_taken_over(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    take_over(redis_client, "b", request_id)
    scripts.acquire("b", request_id)
    assert not scripts.finish(request_id, old)
    assert redis_client.xpending(DEFAULT_REQUESTS, GROUP)["pending"] == 1


def test_burying_moves_the_request_to_the_dead_letter_stream(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    scripts.acquire("a", request_id)
    assert not scripts.bury("b", request_id, {"reason": "no"}, 1000)
    assert scripts.bury("a", request_id, {"request_id": request_id, "reason": "too many"}, 1000)
    assert [fields for _, fields in redis_client.xrange(DEAD)] == [
        {"request_id": request_id, "reason": "too many"}
    ]
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0
    assert redis_client.xpending(DEFAULT_REQUESTS, GROUP)["pending"] == 0
