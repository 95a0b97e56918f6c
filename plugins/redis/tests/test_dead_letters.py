"""A dead letter says why its request died: the last error a watch of it failed with, when, and
how many times it was delivered; never a secret."""

import logging

import attrs

from livecall_redis import DEFAULT_DEAD, DEFAULT_REQUESTS, WatchRequest, enqueue

from .conftest import allowing
from .test_campaign import wait_for


def test_a_dead_letter_keeps_the_last_error_and_when(
    redis_client, livecall_simulator, running_worker, settings, caplog
):
    """Every handshake refused: each try notes the error, the third delivery dies with it."""
    caplog.set_level(logging.INFO, logger="livecall")
    sim = livecall_simulator("phonic", "auth", conversation_id="conv_refused")
    request_id = enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_refused", url=sim.url))
    before_ms = int(redis_client.time()[0]) * 1000
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim), max_deliveries=2))
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    [(_, letter)] = redis_client.xrange(DEFAULT_DEAD)
    assert letter["request_id"] == request_id
    assert letter["reason"] == "delivered too many times"
    assert letter["deliveries"] == "3"
    assert letter["last_error"].startswith("AuthenticationError: ")
    assert "401" in letter["last_error"]
    after_ms = int(redis_client.time()[0]) * 1000 + 1000
    assert before_ms <= int(letter["last_error_at"]) <= after_ms
    assert len(sim.connections) == 2, "two tries, then the dead letter"
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0
    # The worker's own key never reaches Redis, however the server's refusal reads.
    dump = repr(redis_client.xrange(DEFAULT_DEAD)) + repr(redis_client.keys("*"))
    assert "sim-phonic-key" not in dump


def test_the_last_error_of_a_hiya_call_never_holds_its_conversation_token(
    redis_client, livecall_simulator, running_worker, settings
):
    """Hiya refuses the conversation token: the error is kept, the token is not."""
    sim = livecall_simulator("hiya", "auth")
    secret = "lct_" + "s3cret-conversation-token"
    enqueue(
        redis_client,
        WatchRequest("hiya", conversation_token=secret, user_id=sim.credentials["user_id"], url=sim.url),
    )
    running_worker(attrs.evolve(settings, allowed_urls=allowing(sim), max_deliveries=1))
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    [(_, letter)] = redis_client.xrange(DEFAULT_DEAD)
    assert letter["last_error"].startswith("AuthenticationError: ")
    assert "conversation_token" not in letter
    assert secret not in repr(letter)


def test_a_request_dead_on_arrival_has_no_last_error(redis_server, redis_client, running_worker, settings):
    """Malformed: never watched, so nothing failed before; the reason says it all."""
    redis_client.xadd(DEFAULT_REQUESTS, {"provider": "skype", "conversation_id": "c"})
    running_worker(settings)
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 10, "the request dead-lettered")
    [(_, letter)] = redis_client.xrange(DEFAULT_DEAD)
    assert "unknown provider" in letter["reason"] and letter["deliveries"] == "1"
    assert "last_error" not in letter and "last_error_at" not in letter
