"""Redis goes away for twice the lease: workers stop their watches by themselves, then every
call is watched again, and its events are on the stream once each."""

import json
import threading

import pytest

import livecall
from livecall.plugins import create_plugin_manager
from livecall_redis import (
    DEFAULT_EVENTS,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    WatchRequest,
    Worker,
    WorkerSettings,
    enqueue,
)
from livecall_redis._handover import TAKEOVER_REASON

from .conftest import REDIS_SERVER, RedisServer, allowing
from .test_campaign import Call, check_hiya, check_phonic, wait_for

LEASE, RENEW = 2.0, 0.5
PHONIC_CALLS, HIYA_CALLS = 4, 2


@pytest.fixture
def own_server(redis_server, tmp_path):
    """A server of this test's own, since it is stopped and started again (keeping its data)."""
    assert REDIS_SERVER is not None  # redis_server skipped (or failed, under CI) otherwise
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


def test_an_outage_stops_the_watches_and_every_call_is_watched_again_once(
    own_server, livecall_simulator, monkeypatch
):
    monkeypatch.setenv("PHONIC_API_KEY", "sim-phonic-key")
    monkeypatch.setenv("HIYA_TOKEN", "sim-hiya-token")
    client = own_server.client()
    sims = {}
    for index in range(PHONIC_CALLS + HIYA_CALLS):
        if index < PHONIC_CALLS:
            sim = livecall_simulator("phonic", pace=0.7, conversation_id=f"conv_outage-{index}")
            request = WatchRequest("phonic", conversation_id=sim.credentials["conversation_id"], url=sim.url)
        else:
            sim = livecall_simulator("hiya", pace=0.5, join_timeout=0.5)
            token = livecall.Credential(sim.credentials["conversation_token"])
            request = WatchRequest(
                "hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url
            )
        request_id = enqueue(client, request)
        sims[sim.credentials.get("conversation_id", request_id)] = sim
    settings = WorkerSettings(
        redis_url=own_server.url, calls=10, lease=LEASE, renew=RENEW, allowed_urls=allowing(*sims.values())
    )
    worker = Worker(settings, create_plugin_manager(autoload=False))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.stats.calls_held == len(sims), 10, "every call watched")
        wait_for(
            lambda: all(sim.connections and sim.connections[0].sent for sim in sims.values()), 10, "talking"
        )
        own_server.stop(save=True)
        down = threading.Event()
        wait_for(lambda: worker.stats.calls_held == 0, 2 * LEASE, "the worker stopped its watches")
        down.wait(LEASE)  # the server stays away for twice the lease in all: the point of the test
        own_server.start()
        wait_for(lambda: client.xlen(DEFAULT_REQUESTS) == 0, 60, "every request acknowledged")
        assert client.xpending(DEFAULT_REQUESTS, DEFAULT_GROUP)["pending"] == 0
    finally:
        stop.set()
        thread.join(15)
        client.close()
    client = own_server.client()
    entries = [fields for _, fields in client.xrange(DEFAULT_EVENTS)]
    client.close()
    assert len({(fields["call_id"], fields["key"]) for fields in entries}) == len(entries)
    events, gaps = {}, {}
    for fields in entries:
        event = json.loads(fields["event"])
        (gaps if event["event"] == "gap" else events).setdefault(fields["call_id"], []).append(event)
    for call_id, sim in sims.items():
        assert sum(record.accepted for record in sim.connections) >= 2, f"{call_id} was not watched again"
        # Taken over (by the same worker) from a watch that stopped: the stream says where its hole is.
        assert [gap["reason"] for gap in gaps[call_id]] == [TAKEOVER_REASON]
        # What reached the worker while Redis was away is like what reaches a worker that dies.
        check = check_phonic if sim.provider == "phonic" else check_hiya
        check(Call(sim, call_id, call_id), events[call_id], orphaned=True)


def test_a_worker_outlives_a_redis_that_came_back_empty(own_server, livecall_simulator, monkeypatch):
    """Its leases went with the data: it stops those watches, makes the group again, takes new requests."""
    monkeypatch.setenv("PHONIC_API_KEY", "sim-phonic-key")
    first = livecall_simulator("phonic", pace=0.5, conversation_id="conv_before")
    second = livecall_simulator("phonic", conversation_id="conv_after")  # waits until its request comes
    client = own_server.client()
    enqueue(client, WatchRequest("phonic", conversation_id="conv_before", url=first.url))
    settings = WorkerSettings(
        redis_url=own_server.url, lease=LEASE, renew=RENEW, allowed_urls=allowing(first, second)
    )
    worker = Worker(settings, create_plugin_manager(autoload=False))
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        wait_for(lambda: worker.stats.calls_held == 1, 10, "the first call watched")
        own_server.stop(save=False)
        own_server.start()
        wait_for(lambda: worker.stats.calls_held == 0, 4 * LEASE, "the lost call let go")
        enqueue(client, WatchRequest("phonic", conversation_id="conv_after", url=second.url))
        wait_for(lambda: second.call_ended, 20, "the new request watched")
        wait_for(lambda: client.xlen(DEFAULT_REQUESTS) == 0, 10, "the new request acknowledged")
    finally:
        stop.set()
        thread.join(15)
        client.close()
    assert thread.is_alive() is False
