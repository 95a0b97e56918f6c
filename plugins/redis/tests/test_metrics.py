"""``livecall worker --metrics-port``: the worker's figures and livecall's on one endpoint, and its probes."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator

import attrs
import pytest

import livecall
from livecall.cli import run
from livecall.plugins import create_plugin_manager
from livecall.testing import wait_until
from livecall_redis import DEFAULT_EVENTS, DEFAULT_REQUESTS, WatchRequest, enqueue
from livecall_redis._processes import Serving, run_worker

from .conftest import _free_port, allowing

prometheus_parser = pytest.importorskip(
    "prometheus_client.parser", reason="the optional metrics extra is not installed"
)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in prometheus_parser.text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples carrying ``labels`` (and any others)."""
    wanted = set(labels.items())
    return sum(value for (sample, have), value in samples.items() if sample == name and wanted <= have)


def probe(url: str, path: str = "/readyz") -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(f"{url}{path}", timeout=5) as response:
            return response.status, json.load(response)
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.load(error)


def refused(url: str) -> bool:
    try:
        probe(url)
    except urllib.error.URLError as error:
        return isinstance(error.reason, ConnectionRefusedError)
    return False


class HoldsTheEnd:
    """Keeps each watch in its last hook until ``release`` is set: the worker still holds the call."""

    def __init__(self) -> None:
        self.ending = threading.Event()
        self.release = threading.Event()

    @livecall.hookimpl
    def livecall_call_end(self, call, reason):
        self.ending.set()
        self.release.wait(30)


@contextlib.contextmanager
def worker_serving(settings, *plugins) -> Iterator[tuple[str, threading.Event]]:
    """``run_worker`` with ``--metrics-port``, on a thread: its endpoint's URL, and what stops it."""
    pm = create_plugin_manager(autoload=False)
    for plugin in plugins:
        pm.register(plugin)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    stop = threading.Event()
    thread = threading.Thread(target=run_worker, args=(settings, pm, Serving(port), stop), daemon=True)
    thread.start()
    try:
        wait_until(lambda: not refused(url) or not thread.is_alive(), 30)
        assert thread.is_alive(), "the worker stopped at once"
        yield url, stop
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert refused(url), "the endpoint outlived its worker"


def test_one_endpoint_shows_the_worker_and_livecall_and_readyz_follows_the_calls_held(
    redis_client, livecall_simulator, settings
):
    # The screened call waits for a join the worker never sends: held until the worker stops.
    sim = livecall_simulator("hiya", join_timeout=60)
    end = HoldsTheEnd()
    held_one = attrs.evolve(settings, calls=1, allowed_urls=allowing(sim))
    with worker_serving(held_one, end) as (url, stop):
        assert probe(url) == (200, {"status": "ready"})
        before = scrape(url)
        assert total(before, "livecall_worker_capacity_calls") == 1
        assert total(before, "livecall_worker_calls_held") == 0
        token = livecall.Credential(sim.credentials["conversation_token"])
        request_id = enqueue(
            redis_client,
            WatchRequest("hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url),
        )

        def written() -> list[dict]:
            return [
                json.loads(fields["event"])
                for _, fields in redis_client.xrange(DEFAULT_EVENTS)
                if fields["call_id"] == request_id
            ]

        wait_until(lambda: any(event["event"] == "screening_ended" for event in written()), 30)
        events = written()
        during = scrape(url)
        assert total(during, "livecall_worker_calls_held") == 1
        assert total(during, "livecall_worker_capacity_calls") == 1
        assert total(during, "livecall_worker_events_written_total") == len(events)
        received = total(during, "livecall_events_received_total", provider="hiya") - total(
            before, "livecall_events_received_total", provider="hiya"
        )
        assert received == len(events)
        assert total(during, "livecall_events_received_total", provider="hiya", event="transcript") >= 1
        assert total(during, "livecall_calls_active", provider="hiya") == 1
        assert probe(url) == (503, {"status": "not ready", "reason": "at capacity (1 call)"})
        assert probe(url, "/healthz")[0] == 200

        stop.set()  # as a signal does: the worker gives its call back, held in its last hook meanwhile
        assert end.ending.wait(30)
        assert probe(url) == (503, {"status": "not ready", "reason": "draining"})
        assert total(scrape(url), "livecall_worker_calls_held") == 1
        end.release.set()
    assert redis_client.xlen(DEFAULT_REQUESTS) == 1  # given back for another worker, not acknowledged
    assert not [key for key in during if request_id in str(key) or sim.credentials["user_id"] in str(key)]


def two_free_ports() -> int:
    """A loopback port that is free, and so is the next one."""
    for _ in range(100):
        with socket.socket() as first, socket.socket() as second:
            first.bind(("127.0.0.1", 0))
            port = first.getsockname()[1]
            try:
                second.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
            return port
    raise RuntimeError("no two free ports in a row")


def test_livecall_worker_with_two_processes_serves_each_on_its_own_port(redis_server, tmp_path):
    port = two_free_ports()
    env = dict(os.environ, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1")
    argv = [sys.executable, "-m", "livecall", "-p", "livecall_redis", "worker", "--redis", redis_server.url]
    argv += ["--processes", "2", "--calls", "3", "--metrics-port", str(port), "--stale-after", "30"]
    log = tmp_path / "worker.log"
    urls = [f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port + 1}"]
    with log.open("wb") as output:
        worker = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: worker.poll() is not None or not any(refused(url) for url in urls), 60)
        assert worker.poll() is None, log.read_text()
        for url in urls:
            assert probe(url) == (200, {"status": "ready"})
            assert probe(url, "/healthz") == (200, {"status": "ok"})
            samples = scrape(url)
            assert total(samples, "livecall_worker_capacity_calls") == 3
            assert total(samples, "livecall_worker_calls_held") == 0
            assert total(samples, "livecall_build_info", version=livecall.__version__) == 1
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
    text = log.read_text()
    assert worker.returncode == 128 + signal.SIGTERM, text
    for url in urls:
        assert f"serves /metrics, /healthz and /readyz on {url}\n" in text
        assert refused(url)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--stale-after", "30"], "--stale-after needs --metrics-port"),
        (["--metrics-host", "0.0.0.0"], "--metrics-host needs --metrics-port"),
        (["--metrics-port", "65535", "--processes", "2"], "--metrics-port 65535 leaves no port"),
        (["--metrics-port", "65536"], "argument --metrics-port: expected a port number, 0 to 65535"),
        (
            ["--metrics-port", "1", "--stale-after", "nan"],
            "argument --stale-after: expected a number of seconds",
        ),
    ],
)
def test_the_metrics_options_are_checked_before_anything_starts(options, message, capsys):
    try:
        status = run(["worker", "--redis", "redis://127.0.0.1:9/0", *options])
    except SystemExit as exit:  # argparse's own usage error
        status = exit.code
    err = capsys.readouterr().err
    assert status == livecall.ExitStatus.USAGE, err
    assert message in err
