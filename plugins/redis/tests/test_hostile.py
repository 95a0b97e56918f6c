"""Hostile requests and servers: whatever a producer enqueues or a provider sends, a worker goes on,
its credentials go only where they belong, and nothing secret or unbounded reaches Redis or its logs."""

import json
import logging
import struct
from datetime import datetime, timezone

import attrs
import pytest
import redis

import livecall
from livecall.cli import run
from livecall.testing import RawServer, wedged_hub
from livecall_redis import (
    DEFAULT_DEAD,
    DEFAULT_EVENTS,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    WatchRequest,
    WorkerSettings,
    enqueue,
)
from livecall_redis._logs import LINE_LIMIT

from .conftest import allowing
from .test_campaign import wait_for

PHONIC_KEY = "phonic-KEY-5a7c9e"
BEARER = "bearer-TOKEN-3f8a1d"
CONVERSATION_TOKEN = "lct-SECRET-91bd44"


def dead_letters(redis_client) -> list[dict]:
    return [fields for _, fields in redis_client.xrange(DEFAULT_DEAD)]


def phonic_request(redis_client, sim, conversation_id: str) -> str:
    return enqueue(redis_client, WatchRequest("phonic", conversation_id=conversation_id, url=sim.url))


def test_a_request_that_is_not_utf8_is_dead_lettered_and_the_rest_of_its_batch_watched(
    redis_client, livecall_simulator, running_worker, settings, monkeypatch
):
    """Before, the whole XREADGROUP answer failed to decode and the worker's main loop died."""
    monkeypatch.setenv("PHONIC_API_KEY", "sim-phonic-key")
    first = livecall_simulator("phonic", conversation_id="conv_first")
    last = livecall_simulator("phonic", conversation_id="conv_last")
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0", mkstream=True)
    phonic_request(redis_client, first, "conv_first")
    bad = redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": b"conv_\xff\xfe"})
    phonic_request(redis_client, last, "conv_last")
    running_worker(attrs.evolve(settings, allowed_urls=allowing(first, last)))  # one XREADGROUP: all three
    wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30, "the good requests watched")
    assert first.call_ended and last.call_ended
    [dead] = dead_letters(redis_client)
    assert dead["request_id"] == bad and dead["reason"] == "conversation_id is not UTF-8 text"
    assert dead["provider"] == "phonic" and "conversation_id" not in dead


def test_an_undecodable_request_claimed_from_a_dead_worker_is_dead_lettered(
    redis_server, redis_client, running_worker, settings
):
    """XAUTOCLAIM's answer is read field by field too; a field's name may be the bad part."""
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0", mkstream=True)
    bad = redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", b"\xc3(": "x"})
    raw = redis.Redis.from_url(redis_server.url)  # the worker that took it and died read bytes
    try:
        raw.xreadgroup(DEFAULT_GROUP, "gone:1", {DEFAULT_REQUESTS: ">"})
        raw.xclaim(DEFAULT_REQUESTS, DEFAULT_GROUP, "gone:1", 0, [bad], idle=600_000)
    finally:
        raw.close()
    worker = running_worker(settings)
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    [dead] = dead_letters(redis_client)
    assert dead["request_id"] == bad and dead["reason"] == "a field's name is not UTF-8 text"
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0 and worker.stats.calls_held == 0


def test_a_request_over_the_size_limit_is_dead_lettered_without_its_fields(
    redis_client, running_worker, settings, caplog
):
    """Its fields are neither read, kept in the dead letter, nor logged: only its size is."""
    caplog.set_level(logging.DEBUG, logger="livecall")
    fields = {"provider": "phonic", "conversation_id": "conv_" + "x" * 100_000, "url": "ws://127.0.0.1:9"}
    size = sum(len(name) + len(value) for name, value in fields.items())
    request_id = redis_client.xadd(DEFAULT_REQUESTS, fields)
    running_worker(attrs.evolve(settings, max_request_bytes=4096))
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    [dead] = dead_letters(redis_client)
    assert set(dead) == {"request_id", "reason", "deliveries", "consumer"}
    assert dead["request_id"] == request_id
    assert dead["reason"] == f"the request holds {size} bytes, more than the 4096 allowed"
    assert "xxxxxxxx" not in caplog.text


def test_the_size_limit_has_a_safe_default_and_an_option():
    assert attrs.fields(WorkerSettings).max_request_bytes.default == 65_536
    with pytest.raises(livecall.ConfigurationError, match="max-request-bytes must be positive"):
        WorkerSettings(redis_url="redis://127.0.0.1", max_request_bytes=0)


def test_a_dead_letters_reason_and_its_log_line_are_bounded(redis_client, running_worker, settings, caplog):
    """A reason that quotes the request (its URL, 50 kB here) is cut, in Redis and in the log."""
    caplog.set_level(logging.DEBUG, logger="livecall")
    url = "http://127.0.0.1:9/" + "p" * 50_000
    redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_long", "url": url})
    running_worker(settings)
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    [dead] = dead_letters(redis_client)
    assert len(dead["reason"]) <= LINE_LIMIT and "more characters)" in dead["reason"]
    moved = [record.getMessage() for record in caplog.records if "moved to" in record.getMessage()]
    assert moved and all(len(line) <= LINE_LIMIT for line in moved)


def test_a_phonic_request_naming_the_hiya_host_gets_no_phonic_key(
    redis_client, livecall_simulator, running_worker, settings, monkeypatch
):
    """The worker's own Hiya base URL is allowed for Hiya's requests only."""
    monkeypatch.setenv("PHONIC_API_KEY", PHONIC_KEY)
    hiya = livecall_simulator("hiya")
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_stray", url=hiya.url))
    running_worker(attrs.evolve(settings, hiya_url=hiya.url))
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    [dead] = dead_letters(redis_client)
    assert dead["reason"] == f"the request's base URL {hiya.url} is not allowed for phonic here"
    assert hiya.connections == ()


def test_each_provider_gets_only_its_own_allowed_urls(settings):
    hiya, phonic = livecall.get_provider("hiya"), livecall.get_provider("phonic")
    allowed = attrs.evolve(
        settings, allowed_urls=["phonic=wss://eu.phonic.example", "hiya=ws://127.0.0.1:8080"]
    )
    assert allowed.check_url(phonic, "wss://eu.phonic.example") == "wss://eu.phonic.example"
    assert allowed.check_url(hiya, "ws://127.0.0.1:8080") == "ws://127.0.0.1:8080"
    for provider, url in [(hiya, "wss://eu.phonic.example"), (phonic, "ws://127.0.0.1:8080")]:
        with pytest.raises(livecall.ConfigurationError, match=f"not allowed for {provider.name}"):
            allowed.check_url(provider, url)
    with pytest.raises(livecall.ConfigurationError, match="not allowed for phonic"):
        allowed.check_url(phonic, hiya.default_url)


@pytest.mark.parametrize(
    "url",
    [
        "ws://api.phonic.ai",  # the key in clear text
        "ws://api.phonic.ai:443",
        "wss://api.phonic.ai:8443",  # another server on the same host
        "wss://api.phonic.ai.evil.example",
    ],
)
def test_scheme_and_port_are_part_of_what_is_allowed(settings, url):
    phonic = livecall.get_provider("phonic")
    assert settings.check_url(phonic, "wss://API.phonic.ai:443/") == "wss://API.phonic.ai:443/"
    with pytest.raises(livecall.ConfigurationError, match="not allowed for phonic"):
        settings.check_url(phonic, url)


def test_an_allowed_url_must_name_its_provider(settings):
    for entry in ["127.0.0.1", "skype=wss://x.example", "phonic=https://x.example"]:
        with pytest.raises(livecall.ConfigurationError, match="allow-url takes PROVIDER=URL"):
            attrs.evolve(settings, allowed_urls=[entry])


def test_allow_host_says_what_replaced_it(capsys):
    """It allowed one host for every provider's credentials, on any scheme and port."""
    args = ["-p", "livecall_redis", "worker", "--redis", "redis://127.0.0.1:9", "--allow-host", "127.0.0.1"]
    with pytest.raises(SystemExit) as refused:
        run([*args, "--processes", "0"])
    assert refused.value.code == livecall.ExitStatus.USAGE
    assert "use --allow-url PROVIDER=URL" in capsys.readouterr().err


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


def _echoing(messages: list[dict]):
    """A server that sends ``messages``, each echoing a credential, then ends the call."""

    def play(peer):
        for message in messages:
            peer.send(peer.frame(peer.TEXT, json.dumps(message).encode()))
        peer.receive_until(peer.CLOSE)
        peer.send(peer.frame(peer.CLOSE, struct.pack("!H", 1000)))

    return play


def test_credentials_a_server_echoes_are_blanked_on_the_events_stream(
    redis_client, running_worker, settings, monkeypatch
):
    monkeypatch.setenv("PHONIC_API_KEY", PHONIC_KEY)
    monkeypatch.setenv("HIYA_TOKEN", BEARER)
    hiya = RawServer(
        _echoing(
            [
                {"type": "event:start", "phone": "+15551234567", "timestamp": _now()},
                {
                    "type": "transcript",
                    "msg": f"my token is {CONVERSATION_TOKEN}",
                    "role": "other",
                    "offset": 1.0,
                },
                {"type": "error", "description": f"Bearer {BEARER} refused"},
                {"type": "event:callEnd", "timestamp": _now()},
            ]
        )
    )
    phonic = RawServer(
        _echoing(
            [{"type": "error", "error": {"message": f"bad key {PHONIC_KEY}"}}, {"type": "conversation-ended"}]
        )
    )
    try:
        token = livecall.Credential(CONVERSATION_TOKEN)
        enqueue(redis_client, WatchRequest("hiya", conversation_token=token, user_id="u1", url=hiya.url))
        enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_echo", url=phonic.url))
        allowed = [f"hiya={hiya.url}", f"phonic={phonic.url}"]
        running_worker(attrs.evolve(settings, allowed_urls=allowed))
        wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30, "both calls watched")
    finally:
        hiya.stop()
        phonic.stop()
    stream = json.dumps(redis_client.xrange(DEFAULT_EVENTS))
    assert "my token is ***" in stream and "Bearer *** refused" in stream and "bad key ***" in stream
    for secret in (PHONIC_KEY, BEARER, CONVERSATION_TOKEN):
        assert secret not in stream


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_request_with_a_ping_interval_that_is_not_finite_is_dead_lettered(
    redis_client, livecall_simulator, running_worker, settings, value, monkeypatch
):
    """It must not reach the hub, whose timers would never run again."""
    monkeypatch.setenv("PHONIC_API_KEY", "sim-phonic-key")
    sim = livecall_simulator("phonic", conversation_id="conv_after")
    redis_client.xadd(
        DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_nan", "ping_interval": value}
    )
    worker = running_worker(attrs.evolve(settings, allowed_urls=allowing(sim)))
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    assert "ping_interval" in dead_letters(redis_client)[0]["reason"]
    phonic_request(redis_client, sim, "conv_after")
    wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30, "the next request watched")
    assert sim.call_ended and worker.stats.events_written > 0


def _idle_ms(redis_client) -> int:
    [entry] = redis_client.xpending_range(DEFAULT_REQUESTS, DEFAULT_GROUP, "-", "+", 1)
    return entry["time_since_delivered"]


def test_a_wedged_hub_lets_its_leases_lapse_for_another_worker(
    redis_client, livecall_simulator, running_worker, settings, caplog
):
    """Its calls are not served: renewing them, or claiming them back, would keep them from others."""
    caplog.set_level(logging.INFO, logger="livecall")
    sim = livecall_simulator("hiya", join_timeout=60)  # the call waits for a join: held
    token = livecall.Credential(sim.credentials["conversation_token"])
    request_id = enqueue(
        redis_client,
        WatchRequest("hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url),
    )
    worker = running_worker(attrs.evolve(settings, allowed_urls=allowing(sim), hub_stall=1.0))
    wait_for(lambda: worker.stats.events_written >= 1, 30, "the call held")
    with wedged_hub():
        lease_ms = int(settings.lease * 1000)
        wait_for(lambda: _idle_ms(redis_client) > lease_ms, 4 * settings.lease, "the lease left to lapse")
        redis_client.xautoclaim(DEFAULT_REQUESTS, DEFAULT_GROUP, "other:1", lease_ms, "0-0")
        # Who holds it now, asked in a way every redis-py answers alike (XAUTOCLAIM's shape varies).
        [entry] = redis_client.xpending_range(DEFAULT_REQUESTS, DEFAULT_GROUP, "-", "+", 1)
        assert (entry["message_id"], entry["consumer"]) == (request_id, "other:1")
    stalled = [record for record in caplog.records if "the hub has not turned" in record.getMessage()]
    assert len(stalled) == 1


def test_a_field_named_self_is_an_unknown_field(redis_client, running_worker, settings):
    """It once reached ``WatchRequest``'s own first parameter, and the worker's main loop died."""
    redis_client.xadd(DEFAULT_REQUESTS, {"provider": "phonic", "conversation_id": "conv_p", "self": "x"})
    running_worker(settings)
    wait_for(lambda: redis_client.xlen(DEFAULT_DEAD) == 1, 30, "the request dead-lettered")
    assert dead_letters(redis_client)[0]["reason"].startswith("a phonic request takes no self:")
