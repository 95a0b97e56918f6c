"""The handover's scripts against a real Redis: the old token writes until the new one does.

A draining worker hands a request over (``hand_over``); another worker claims
and acquires it; both write, deduplicated by key, until the new token's first
write, after which the old token is fenced.  A worker taking a call over
without a handover learns where its gap begins (``gap_since``).
"""

import pytest

from livecall_redis import DEFAULT_REQUESTS
from livecall_redis._scripts import DUPLICATE, STALE, WRITTEN

from .conftest import EVENTS, GROUP, deliver

LEASE_MS = 30_000
GRACE_MS = 1_000


def claim_lapsed(redis_client, consumer):
    """What a worker's next look does: claim the entries idle for at least the lease."""
    pending = redis_client.xpending_range(DEFAULT_REQUESTS, GROUP, "-", "+", 10)
    ids = [entry["message_id"] for entry in pending]
    return redis_client.xclaim(DEFAULT_REQUESTS, GROUP, consumer, LEASE_MS, ids, justid=True) if ids else []


def pending(redis_client):
    [entry] = redis_client.xpending_range(DEFAULT_REQUESTS, GROUP, "-", "+", 1)
    return entry


def write(scripts, token, request_id, key):
    return scripts.write(token, request_id, "conv_1", key, f'{{"key": "{key}"}}', 1000, 60)


def keys_written(redis_client):
    return [fields["key"] for _, fields in redis_client.xrange(EVENTS)]


@pytest.fixture
def handed_over(redis_client, scripts):
    """A request held by ``a`` (token 1), handed over, claimed and acquired by ``b`` (token 2)."""
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    assert write(scripts, old, request_id, "k1") == WRITTEN
    assert scripts.hand_over("a", request_id, old, LEASE_MS)
    assert claim_lapsed(redis_client, "b") == [request_id], "claimable at once, not after a lease"
    acquired = scripts.acquire("b", request_id)
    return request_id, old, acquired


def test_the_old_token_writes_until_the_new_one_does_then_it_is_fenced(redis_client, scripts, handed_over):
    request_id, old, acquired = handed_over
    new = acquired.token
    assert acquired.handed_over and (old, new) == (1, 2)
    assert write(scripts, old, request_id, "k2") == WRITTEN, "the overlap: the old watch still writes"
    assert write(scripts, new, request_id, "k2") == DUPLICATE, "the same event, seen by both"
    assert write(scripts, old, request_id, "k3") == STALE, "the new token wrote: the old is fenced"
    assert write(scripts, new, request_id, "k3") == WRITTEN
    assert keys_written(redis_client) == ["k1", "k2", "k3"]
    assert redis_client.get(scripts.fenced_counter) == "1"
    assert not redis_client.hexists(scripts.fence(request_id), "handover")


def test_a_new_write_that_is_no_duplicate_ends_the_overlap_too(redis_client, scripts, handed_over):
    request_id, old, acquired = handed_over
    assert write(scripts, acquired.token, request_id, "k2") == WRITTEN
    assert write(scripts, old, request_id, "k3") == STALE


def test_the_old_workers_own_writes_before_anyone_claims_keep_the_handover(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    assert scripts.hand_over("a", request_id, token, LEASE_MS)
    assert [write(scripts, token, request_id, key) for key in ("k1", "k2")] == [WRITTEN, WRITTEN]
    assert redis_client.hget(scripts.fence(request_id), "handover") == str(token)
    assert claim_lapsed(redis_client, "b") == [request_id]
    assert scripts.acquire("b", request_id).handed_over


def test_a_takeover_without_a_handover_fences_the_old_token_at_once(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    redis_client.xclaim(DEFAULT_REQUESTS, GROUP, "b", 0, [request_id])
    acquired = scripts.acquire("b", request_id)
    assert not acquired.handed_over and acquired.deliveries == 2
    assert write(scripts, old, request_id, "k1") == STALE


def test_a_handover_is_not_counted_as_a_failed_delivery_but_a_second_claim_is(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    scripts.hand_over("a", request_id, old, LEASE_MS)
    claim_lapsed(redis_client, "b")
    assert scripts.acquire("b", request_id).deliveries == 1
    assert pending(redis_client)["times_delivered"] == 1
    # b dies before writing; c claims it: that one counts.
    redis_client.xclaim(DEFAULT_REQUESTS, GROUP, "c", 0, [request_id])
    assert scripts.acquire("c", request_id).deliveries == 2


def test_only_the_newest_token_finishes_a_call_that_ends_during_the_overlap(
    redis_client, scripts, handed_over
):
    request_id, old, acquired = handed_over
    assert not scripts.finish(request_id, old)
    assert redis_client.xlen(DEFAULT_REQUESTS) == 1
    assert scripts.finish(request_id, acquired.token)
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0


def test_handing_over_a_lease_already_lost_fails(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    redis_client.xclaim(DEFAULT_REQUESTS, GROUP, "b", 0, [request_id])
    scripts.acquire("b", request_id)
    assert not scripts.hand_over("a", request_id, old, LEASE_MS)
    assert not redis_client.hexists(scripts.fence(request_id), "handover")


def test_each_write_keeps_the_time_of_the_calls_newest_entry(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    token = scripts.acquire("a", request_id).token
    write(scripts, token, request_id, "k1")
    write(scripts, token, request_id, "k1")  # a duplicate adds no entry
    [(entry_id, _)] = redis_client.xrange(EVENTS)
    assert redis_client.hget(scripts.fence(request_id), "last_write_ms") == entry_id.split("-")[0]


def test_a_takeover_without_a_handover_has_a_gap_from_the_newest_entry(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    old = scripts.acquire("a", request_id).token
    write(scripts, old, request_id, "k1")
    redis_client.xclaim(DEFAULT_REQUESTS, GROUP, "b", 0, [request_id])
    new = scripts.acquire("b", request_id).token
    [(entry_id, _)] = redis_client.xrange(EVENTS)
    assert scripts.gap_since(request_id, new, GRACE_MS) == int(entry_id.split("-")[0])
    assert scripts.gap_since(request_id, old, GRACE_MS) is None, "a stale token learns nothing"


def test_a_call_nothing_was_written_for_has_a_gap_from_its_request(redis_client, scripts):
    request_id = deliver(redis_client, "a")
    scripts.acquire("a", request_id)
    redis_client.xclaim(DEFAULT_REQUESTS, GROUP, "b", 0, [request_id])
    new = scripts.acquire("b", request_id).token
    assert scripts.gap_since(request_id, new, GRACE_MS) == int(request_id.split("-")[0])


def test_a_handover_under_way_has_no_gap(redis_client, scripts, handed_over):
    request_id, old, acquired = handed_over
    assert scripts.gap_since(request_id, acquired.token, GRACE_MS) is None


def test_the_old_connection_lost_just_now_is_the_handover_itself(redis_client, scripts, handed_over):
    """A provider keeping one connection per call closed the old one as the new one opened."""
    request_id, old, acquired = handed_over
    assert scripts.let_go(request_id, old, ended=False)
    assert scripts.gap_since(request_id, acquired.token, GRACE_MS) is None


def test_the_old_connection_lost_long_before_the_new_one_opened_leaves_a_gap(
    redis_client, scripts, handed_over
):
    request_id, old, acquired = handed_over
    scripts.let_go(request_id, old, ended=False)
    lost = int(redis_client.hget(scripts.fence(request_id), "handover_lost_ms"))
    redis_client.hset(scripts.fence(request_id), "handover_lost_ms", lost - 5_000)
    [(entry_id, _)] = redis_client.xrange(EVENTS)
    assert scripts.gap_since(request_id, acquired.token, GRACE_MS) == int(entry_id.split("-")[0])


def test_giving_up_a_handover_leaves_a_gap_and_fences_the_old_token(redis_client, scripts, handed_over):
    """The drain timed out before the new worker could connect (a provider refusing a second one)."""
    request_id, old, acquired = handed_over
    assert scripts.let_go(request_id, old, ended=True)
    assert scripts.gap_since(request_id, acquired.token, GRACE_MS) is not None
    assert write(scripts, old, request_id, "k2") == STALE


def test_letting_go_after_the_new_worker_wrote_changes_nothing(redis_client, scripts, handed_over):
    request_id, old, acquired = handed_over
    write(scripts, acquired.token, request_id, "k2")
    assert not scripts.let_go(request_id, old, ended=False)
    assert not scripts.let_go(request_id, old, ended=True)
    assert not redis_client.hexists(scripts.fence(request_id), "handover_lost_ms")
