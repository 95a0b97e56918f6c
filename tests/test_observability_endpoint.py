"""The process's endpoint (``livecall.observability.serve``), scraped and probed over real HTTP.

Metrics are read with urllib and prometheus_client's own parser, during a
simulated call held still by a plugin and after it; health is made to fail
by a plugin stuck in a hook, a wedged hub and a connection that hears
nothing.  Counters are process-wide and other tests' watches add to them, so
each check compares a scrape with the one taken before the call.
"""

import collections
import json
import re
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request

import pytest
from cli_process import base_env
from prometheus_client.parser import text_string_to_metric_families

import livecall
from livecall import CallStarted, ConfigurationError, observability
from livecall._hub.loop import running_hub
from livecall.testing import Exploding, RawServer, Simulator, wait_until, wedged_hub

from .conftest import FAST

#: A bound on every wait below; only a hang reaches it.
WAIT = 20.0
EVENTS = "livecall_events_received_total"


def fetch(url, method="GET"):
    """``(status, headers, body)`` of one request: an error status is an answer too."""
    request = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers, error.read()


def scrape(endpoint):
    """Every sample of ``/metrics``: ``{(sample name, frozenset(labels)): value}``."""
    status, headers, body = fetch(endpoint.url + "/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(samples, name, **labels):
    """One sample's value; 0 for a sample not (yet) shown, as for a counter not yet counted."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def grown(after, before, name, **labels):
    return value(after, name, **labels) - value(before, name, **labels)


def health(endpoint):
    status, _, body = fetch(endpoint.url + "/healthz")
    return status, json.loads(body)


def unhealthy(endpoint):
    """The body of the first 503 ``/healthz`` answers."""

    def answer():
        status, said = health(endpoint)
        return status == 503 and said

    return wait_until(answer, timeout=WAIT)


@pytest.fixture
def endpoint():
    served = observability.serve()
    yield served
    served.close()


class Gate:
    """A plugin that holds the first transcript's ``livecall_transcript`` until ``opened`` is set."""

    def __init__(self):
        self.inside, self.opened = threading.Event(), threading.Event()
        self.transcripts = 0

    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        self.transcripts += 1
        if not self.inside.is_set():
            self.inside.set()
            assert self.opened.wait(WAIT), "the test never let the call go on"


def _kinds(recorder):
    return collections.Counter(event.kind for event in recorder.events())


def test_a_scrape_during_a_call_and_after_it_counts_what_the_plugins_saw(
    endpoint, client_for, plugin_manager, recorder
):
    gate = Gate()
    plugin_manager.register(gate, name="gate")
    before = scrape(endpoint)
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim)
        client.start(wait=False)
        try:
            assert gate.inside.wait(WAIT)
            during = scrape(endpoint)
            stats, seen = client.stats, _kinds(recorder)
        finally:
            gate.opened.set()
        assert client.wait(WAIT)
    after = scrape(endpoint)

    assert grown(during, before, "livecall_calls_active", provider="phonic") == 1
    assert grown(after, before, "livecall_calls_active", provider="phonic") == 0
    # Every livecall_event hook ran before the gate's livecall_transcript closed: the counts match.
    assert seen["transcript"] == 1
    for kind, number in seen.items():
        assert grown(during, before, EVENTS, provider="phonic", event=kind) == number
    assert grown(during, before, "livecall_handshake_duration_seconds_count") == 1
    # Each Phonic message is a snapshot; the one whose line is held at the gate has not had its
    # last hook return, so its lag is not taken yet.
    dispatched = seen["conversation_updated"] - 1
    assert grown(during, before, "livecall_event_lag_seconds_count") == dispatched
    assert stats.messages >= dispatched + 1  # counted as they are read, the held one too
    assert grown(during, before, "livecall_hook_duration_seconds_count", plugin="gate") == 0

    seen = _kinds(recorder)
    assert {"conversation_updated", "transcript", "conversation_ended"} <= set(seen)
    for kind, number in seen.items():
        assert grown(after, before, EVENTS, provider="phonic", event=kind) == number
    assert grown(after, before, "livecall_handshake_duration_seconds_count") == 1
    assert grown(after, before, "livecall_event_lag_seconds_count") == client.stats.messages > 1
    assert grown(after, before, "livecall_hook_duration_seconds_count", plugin="gate") == gate.transcripts
    assert gate.transcripts == seen["transcript"] > 1
    assert grown(after, before, "livecall_hook_duration_seconds_count", plugin="recorder") == len(
        recorder.calls
    )
    assert grown(after, before, "livecall_hook_duration_seconds_sum", plugin="gate") > 0
    assert value(after, "livecall_build_info", version=livecall.__version__) == 1
    assert value(after, "livecall_calls_active", provider="hiya") >= 0, "every provider has its gauge"
    assert ("livecall_calls_active", frozenset({("provider", "hiya")})) in after


def test_no_label_holds_a_call_id_a_credential_or_a_phone_number(endpoint, client_for, recorder):
    secrets = set()
    with Simulator("hiya", "screening") as sim:
        client = client_for(sim)
        client.start()
        client.join_call(WAIT)
        assert client.wait(WAIT)
        secrets |= {client.call.id, *sim.credentials.values()}
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim)
        client.run()
        secrets |= {client.call.id, *sim.credentials.values()}
    phones = {event.phone for event in recorder.events(CallStarted)}
    assert phones == {"+15551234567"}, "the call had a phone number to leak"
    body = fetch(endpoint.url + "/metrics")[2].decode()
    labels = [
        (sample.name, label)
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        for label in sample.labels.values()
    ]
    assert ("livecall_events_received_total", "call_started") in labels, "the calls were counted"
    for secret in {secret for secret in secrets | phones if secret}:
        assert not [name for name, label in labels if secret in label], f"a label holds {secret!r}"
        assert secret not in body


def test_a_client_says_whether_it_is_connected_and_how_long_ago_it_heard_its_server(
    client_for, plugin_manager
):
    gate = Gate()
    plugin_manager.register(gate, name="gate")
    with Simulator("hiya", "screening", join_timeout=60) as sim:  # open until joined
        client = client_for(sim)
        assert (client.connected, client.last_frame_age, client.last_message_age) == (False, None, None)
        client.start(wait=False)
        try:
            assert gate.inside.wait(WAIT)
            assert client.connected
            assert 0 <= client.last_frame_age < WAIT and 0 <= client.last_message_age < WAIT
        finally:
            gate.opened.set()
        client.join_call(WAIT)
        assert client.wait(WAIT)
    assert not client.connected
    assert client.last_frame_age is not None and client.last_message_age is not None


def test_client_stats_count_messages_events_reconnects_and_failures(client_for, plugin_manager, recorder):
    plugin_manager.register(Exploding("livecall_event"), name="exploding")
    with Simulator("phonic", "drop", drop_mode=1011) as sim:
        client = client_for(sim)
        assert client.stats == livecall.ClientStats(
            queued=0, queue_high_water=0, queue_size=client.stats.queue_size
        )
        client.run()
        sent = sum(len(connection.sent) for connection in sim.connections)
    stats = client.stats
    assert dict(stats.events) == dict(_kinds(recorder))
    assert {"conversation_updated", "transcript", "reconnecting", "conversation_ended"} <= set(stats.events)
    assert stats.reconnects == len(recorder.of("reconnect")) == 1
    assert stats.plugin_failures == len(recorder.of("error")) == sum(stats.events.values())
    assert stats.messages == sent, "every message the simulator sent, on either connection"


# --- /healthz -------------------------------------------------------------------------------


@pytest.fixture
def stuck_after_short():
    """The hub's watchdog at 0.2 s for this test; the defaults again after it.

    ``configure_hub()`` works only while no hub runs: every other test's
    watches are over by now, and this one's by its end.
    """
    wait_until(lambda: running_hub() is None, timeout=WAIT)
    livecall.configure_hub(stuck_after=0.2)
    try:
        yield
    finally:
        wait_until(lambda: running_hub() is None, timeout=WAIT)
        livecall.configure_hub()


class Slowpoke:
    """Blocks in its first ``livecall_event`` until ``release`` is set."""

    def __init__(self):
        self.inside, self.release = threading.Event(), threading.Event()

    @livecall.hookimpl
    def livecall_event(self, call, event):
        if not self.inside.is_set():
            self.inside.set()
            assert self.release.wait(WAIT)


def test_healthz_names_a_plugin_stuck_in_a_hook_until_it_returns(
    stuck_after_short, endpoint, client_for, plugin_manager
):
    slowpoke = Slowpoke()
    plugin_manager.register(slowpoke, name="slowpoke")
    with Simulator("phonic", "conversation") as sim:
        client = client_for(sim)
        client.start(wait=False)
        try:
            assert slowpoke.inside.wait(WAIT)
            answer = unhealthy(endpoint)
            assert answer["status"] == "unhealthy"
            (problem,) = answer["problems"]
            assert re.fullmatch(r"plugin slowpoke has been stuck in a hook for [0-9.]+ s", problem)
            assert client.call.id not in json.dumps(answer)
        finally:
            slowpoke.release.set()
        assert wait_until(lambda: health(endpoint) == (200, {"status": "ok"}), WAIT)
        assert client.wait(WAIT)


def _silent(peer):
    """A server that completes the handshake and then says nothing; it answers a close frame."""
    payload = peer.receive_until(peer.CLOSE)
    peer.send(peer.frame(peer.CLOSE, payload))


@pytest.fixture
def silent_server():
    server = RawServer(_silent)
    yield server
    server.stop()
    assert server.errors == []


def _silent_client(server, **options):
    kwargs = dict(FAST, ping_interval=None, max_retries=0)
    kwargs.update(options)
    return livecall.PhonicClient(
        "conv_silent-7e21", api_key="silent-key-4b9d", url=server.url, plugins=[], **kwargs
    )


def test_healthz_fails_while_the_hub_is_wedged_and_recovers(silent_server):
    client = _silent_client(silent_server)
    with observability.serve(hub_stall=1.5) as served:
        client.start()
        try:
            assert health(served) == (200, {"status": "ok"})
            with wedged_hub():
                answer = unhealthy(served)
                (problem,) = answer["problems"]
                assert problem.startswith("the hub's I/O thread has not turned for ")
            assert wait_until(lambda: health(served) == (200, {"status": "ok"}), WAIT)
        finally:
            client.close(timeout=5)
    assert client.finished


def test_healthz_counts_connections_that_heard_nothing_without_naming_them(silent_server):
    client = _silent_client(silent_server)
    with observability.serve(stale_after=0.3) as served:
        client.start()
        try:
            assert client.connected
            answer = unhealthy(served)
            assert answer["problems"] == ["1 open connection(s) heard nothing for more than 0.3 s"]
            assert "conv_silent-7e21" not in json.dumps(answer)
            assert client.last_frame_age > 0.3 and client.last_message_age is None
        finally:
            client.close(timeout=5)
        assert health(served) == (200, {"status": "ok"}), "a closed connection is no longer counted"


# --- the endpoint itself ---------------------------------------------------------------------


def test_another_path_is_404_head_answers_without_a_body_and_close_is_idempotent(endpoint):
    status, _, body = fetch(endpoint.url + "/nothing-here")
    assert status == 404 and json.loads(body)["paths"] == ["/metrics", "/healthz", "/readyz"]
    status, headers, body = fetch(endpoint.url + "/metrics", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    status, _, body = fetch(endpoint.url + "/readyz?verbose=1")
    assert (status, json.loads(body)) == (200, {"status": "ready"})
    assert fetch(endpoint.url + "/metrics", method="POST")[0] == 501
    endpoint.close()
    endpoint.close()
    with pytest.raises(urllib.error.URLError):
        urllib.request.urlopen(endpoint.url + "/healthz", timeout=WAIT)


@pytest.mark.parametrize(
    "ready, status, answer",
    [
        (lambda: False, 503, {"status": "not ready", "reason": "not ready"}),
        (lambda: (False, "draining"), 503, {"status": "not ready", "reason": "draining"}),
        (lambda: (True, ""), 200, {"status": "ready"}),
    ],
    ids=["bool", "with a reason", "ready"],
)
def test_readyz_answers_what_ready_says(ready, status, answer):
    with observability.serve(ready=ready) as served:
        got, _, body = fetch(served.url + "/readyz")
    assert (got, json.loads(body)) == (status, answer)


def test_a_port_in_use_is_a_configuration_error():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigurationError, match=rf"cannot serve metrics on 127\.0\.0\.1:{port}: "):
            observability.serve(port)


def test_without_prometheus_client_serve_and_enable_metrics_name_the_extra(monkeypatch):
    for name in [name for name in sys.modules if name.split(".")[0] == "prometheus_client"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)
    monkeypatch.delitem(sys.modules, "livecall._observe.metrics", raising=False)
    with pytest.raises(ConfigurationError, match=re.escape("pip install 'livecall[metrics]'")):
        observability.serve()
    with pytest.raises(ConfigurationError, match=re.escape("livecall[metrics]")):
        observability.enable_metrics()


WATCH_WITHOUT_METRICS = """
import json, sys
import livecall
client = livecall.PhonicClient(**json.loads(sys.argv[1]), plugins=[])
client.run()
assert client.stats.events["conversation_ended"] == 1
libraries = ("prometheus_client", "opentelemetry")
print(json.dumps(sorted(name for name in sys.modules if name.split(".")[0] in libraries)))
"""


def test_a_watch_without_metrics_or_tracing_imports_neither_library():
    with Simulator("phonic", "conversation") as sim:
        child = subprocess.run(
            [sys.executable, "-c", WATCH_WITHOUT_METRICS, json.dumps(sim.client_kwargs())],
            capture_output=True,
            text=True,
            timeout=60,
            env=base_env(),
        )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == []
