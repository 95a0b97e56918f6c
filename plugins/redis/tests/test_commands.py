"""``livecall enqueue`` and ``livecall worker`` from the command line; dead letters; token sources."""

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import livecall
from livecall.cli import run
from livecall.plugins import create_plugin_manager
from livecall_redis import (
    DEFAULT_DEAD,
    DEFAULT_GROUP,
    DEFAULT_REQUESTS,
    WatchRequest,
    Worker,
    WorkerSettings,
    enqueue,
)

from .conftest import allowing, worker_argv, worker_env
from .test_campaign import wait_for
from .test_worker import stream_events


def test_enqueue_prints_the_request_id(redis_server, redis_client, capsys):
    args = [
        "enqueue",
        "phonic",
        "--redis",
        redis_server.url,
        "--conversation-id",
        "conv_9",
        "--url",
        "ws://h:1",
    ]
    assert run(args) == 0
    request_id = capsys.readouterr().out.strip()
    [(entry_id, fields)] = redis_client.xrange(DEFAULT_REQUESTS)
    assert entry_id == request_id
    assert fields == {"provider": "phonic", "conversation_id": "conv_9", "url": "ws://h:1"}


def test_enqueue_hiya_takes_the_conversation_token_from_the_environment_and_never_prints_it(
    redis_server, redis_client, capsys, monkeypatch
):
    monkeypatch.setenv("HIYA_CONVERSATION_TOKEN", "lct_secret-value")
    monkeypatch.setenv("LIVECALL_REDIS_URL", redis_server.url)
    assert run(["-v", "enqueue", "hiya", "--user-id", "u1", "--max-retries", "2"]) == 0
    out, err = capsys.readouterr()
    [(_, fields)] = redis_client.xrange(DEFAULT_REQUESTS)
    assert fields["conversation_token"] == "lct_secret-value" and fields["max_retries"] == "2"
    assert "lct_secret-value" not in out + err


def test_enqueue_without_redis_says_where_to_set_it(capsys, monkeypatch):
    monkeypatch.delenv("LIVECALL_REDIS_URL", raising=False)
    assert run(["enqueue", "phonic", "--conversation-id", "c"]) != 0
    assert "LIVECALL_REDIS_URL" in capsys.readouterr().err


def run_worker_until(settings, done, plugins=()):
    pm = create_plugin_manager(autoload=False)
    for plugin in plugins:
        pm.register(plugin)
    worker = Worker(settings, pm)
    stop = threading.Event()
    thread = threading.Thread(target=worker.run, args=(stop,), name="test-worker", daemon=True)
    thread.start()
    try:
        wait_for(done, 30, "the worker's work")
    finally:
        stop.set()
        thread.join(15)
    return worker


def test_a_malformed_request_goes_to_the_dead_letter_stream(redis_server, redis_client):
    redis_client.xadd(DEFAULT_REQUESTS, {"provider": "skype", "conversation_token": "lct_x"})
    settings = WorkerSettings(redis_url=redis_server.url, lease=3, renew=1)
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_DEAD) == 1)
    [(_, fields)] = redis_client.xrange(DEFAULT_DEAD)
    assert fields["provider"] == "skype" and "unknown provider" in fields["reason"]
    assert "conversation_token" not in fields  # a credential does not outlive its request
    assert redis_client.xlen(DEFAULT_REQUESTS) == 0


def test_a_request_delivered_too_often_goes_to_the_dead_letter_stream(redis_server, redis_client):
    request_id = enqueue(
        redis_client, WatchRequest("phonic", conversation_id="conv_loop", url="ws://127.0.0.1:9")
    )
    redis_client.xgroup_create(DEFAULT_REQUESTS, DEFAULT_GROUP, id="0")
    redis_client.xreadgroup(DEFAULT_GROUP, "gone:1", {DEFAULT_REQUESTS: ">"})
    for _ in range(2):  # two more deliveries, to workers that died; idle long past any lease
        redis_client.xclaim(DEFAULT_REQUESTS, DEFAULT_GROUP, "gone:1", 0, [request_id], idle=600_000)
    settings = WorkerSettings(redis_url=redis_server.url, lease=3, renew=1, max_deliveries=3)
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_DEAD) == 1)
    [(_, fields)] = redis_client.xrange(DEFAULT_DEAD)
    assert fields["request_id"] == request_id and fields["deliveries"] == "4"
    assert fields["reason"] == "delivered too many times"


def test_a_request_naming_a_host_not_allowed_goes_to_the_dead_letter_stream(
    redis_server, redis_client, livecall_simulator, monkeypatch
):
    """The worker would send its own credentials there."""
    monkeypatch.setenv("PHONIC_API_KEY", "sim-phonic-key")
    sim = livecall_simulator("phonic")
    enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_x", url=sim.url))
    settings = WorkerSettings(redis_url=redis_server.url, lease=3, renew=1)
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_DEAD) == 1)
    [(_, fields)] = redis_client.xrange(DEFAULT_DEAD)
    assert fields["reason"] == f"the request's base URL {sim.url} is not allowed for phonic here"
    assert sim.connections == ()


def hiya_request(redis_client, sim):
    token = livecall.Credential(sim.credentials["conversation_token"])
    return enqueue(
        redis_client,
        WatchRequest("hiya", conversation_token=token, user_id=sim.credentials["user_id"], url=sim.url),
    )


def test_the_hiya_token_command_runs_for_each_connection(
    redis_server, redis_client, livecall_simulator, monkeypatch
):
    monkeypatch.delenv("HIYA_TOKEN", raising=False)
    sim = livecall_simulator("hiya", join_timeout=0, token="fresh-token-1")
    request_id = hiya_request(redis_client, sim)
    command = f"{sys.executable} -c \"print('fresh-token-1')\""
    settings = WorkerSettings(
        redis_url=redis_server.url, lease=3, renew=1, allowed_urls=allowing(sim), hiya_token_command=command
    )
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0)
    assert stream_events(redis_client, request_id)[-1]["event"] == "call_ended"
    assert sim.connections[0].header("Authorization") == "Bearer fresh-token-1"


class VaultPlugin:
    def __init__(self) -> None:
        self.asked: list[tuple[str, str]] = []

    @livecall.hookimpl
    def livecall_credential(self, provider, name):
        self.asked.append((provider, name))
        return "vault-token" if (provider, name) == ("hiya", "token") else None


def test_a_plugin_can_supply_the_hiya_token(redis_server, redis_client, livecall_simulator, monkeypatch):
    monkeypatch.setenv("HIYA_TOKEN", "not-this-one")
    sim = livecall_simulator("hiya", join_timeout=0, token="vault-token")
    request_id = hiya_request(redis_client, sim)
    vault = VaultPlugin()
    settings = WorkerSettings(redis_url=redis_server.url, lease=3, renew=1, allowed_urls=allowing(sim))
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, plugins=[vault])
    assert vault.asked == [("hiya", "token")]
    assert stream_events(redis_client, request_id)[-1]["event"] == "call_ended"


def test_livecall_worker_with_two_processes_watches_and_stops_on_sigterm(
    redis_server, redis_client, livecall_simulator, tmp_path
):
    sim = livecall_simulator("phonic", conversation_id="conv_cli")
    env = worker_env(PHONIC_API_KEY="sim-phonic-key")
    argv = worker_argv(redis_server.url)
    argv += ["--processes", "2", "--lease", "3", "--renew", "1", "--phonic-url", sim.url]
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(argv, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        enqueue(redis_client, WatchRequest("phonic", conversation_id="conv_cli"))
        wait_for(lambda: redis_client.xlen(DEFAULT_REQUESTS) == 0, 30, "the call watched to its end")
        wait_for(lambda: log.read_bytes().count(b"takes up to") == 2, 30, "two processes")
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(20)
    text = log.read_text()
    assert worker.returncode == 128 + signal.SIGTERM, text
    assert "sim-phonic-key" not in text
    lines = [e["text"] for e in stream_events(redis_client, "conv_cli") if e["event"] == "transcript"]
    assert len(lines) == 6
    assert len([line for line in text.splitlines() if "call conv_cli ended" in line]) == 1


def test_the_worker_s_figures_are_served_beside_livecall_s(redis_server, redis_client):
    pytest.importorskip("prometheus_client", reason="the optional metrics extra is not installed")
    import urllib.request

    from livecall import observability
    from livecall_redis import Stats

    stats = Stats(calls_held=3, fenced_writes=2)
    observability.add_metrics_source(stats.families)
    try:
        with observability.serve() as endpoint:
            with urllib.request.urlopen(f"{endpoint.url}/metrics", timeout=5) as response:
                body = response.read().decode()
    finally:
        observability.remove_metrics_source(stats.families)
    assert "livecall_worker_calls_held 3.0" in body
    assert "livecall_worker_fenced_writes_total 2.0" in body
    assert "livecall_worker_capacity_calls 0.0" in body
    assert "livecall_build_info{" in body


def test_the_readme_consumer_prints_the_transcript(redis_server, redis_client, tmp_path):
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    consumer = [block for block in readme.split("```python\n")[1:] if "xreadgroup" in block][0].split("```")[
        0
    ]
    assert len([line for line in consumer.splitlines() if line.strip()]) <= 16
    script = tmp_path / "consumer.py"
    script.write_text(consumer.replace("redis://127.0.0.1:6379/0", redis_server.url))
    line = {"event": "transcript", "role": "user", "text": "Tuesday at 10 works."}
    redis_client.xadd("livecall:events", {"call_id": "conv_1", "key": "k", "event": json.dumps(line)})
    reader = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    try:
        printed = reader.stdout.readline()
        wait_for(lambda: redis_client.xpending("livecall:events", "transcripts")["pending"] == 0, 10, "acked")
    finally:
        reader.kill()
        reader.wait()
    assert printed == "conv_1 user Tuesday at 10 works.\n"


def test_a_request_that_would_smuggle_a_header_goes_to_the_dead_letter_stream(redis_server, redis_client):
    redis_client.xadd(
        DEFAULT_REQUESTS,
        {"provider": "hiya", "conversation_token": "lct_x", "user_id": "u1\r\nAuthorization: Bearer stolen"},
    )
    settings = WorkerSettings(redis_url=redis_server.url, lease=3, renew=1)
    run_worker_until(settings, lambda: redis_client.xlen(DEFAULT_DEAD) == 1)
    [(_, fields)] = redis_client.xrange(DEFAULT_DEAD)
    assert fields["reason"] == "user_id must be printable text: it is sent in an HTTP request"


# --- what a newcomer sees: the worker's first and last lines, help, one exit status ------


def livecall_redis(*args):
    """``livecall -p livecall_redis ARGS``, a real process, at default verbosity."""
    env = dict(os.environ, LIVECALL_DISABLE_PLUGIN_AUTOLOAD="1")
    argv = [sys.executable, "-m", "livecall", "-p", "livecall_redis", *args]
    return subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_worker_says_when_it_starts_and_stops_and_never_shows_the_password(redis_server):
    url = redis_server.url.replace("redis://", "redis://default:s3cret-pass@")
    worker = livecall_redis("worker", "--redis", url, "--calls", "7")
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in worker.stderr], daemon=True)
    reader.start()
    try:
        first = lines.get(timeout=30)  # the worker says it runs before it takes any call
    except queue.Empty:
        first = "(nothing)"
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(30)
        reader.join(30)
    rest = "".join(lines.queue)
    assert first.startswith("livecall: worker "), first + rest
    consumer = first.split()[2]
    assert re.fullmatch(
        f"livecall: worker {re.escape(consumer)} takes up to 7 calls from livecall:requests on "
        f"redis://127\\.0\\.0\\.1:{redis_server.port}/0 \\(group livecall-workers; "
        r"\d+ open files allow \d+ calls\); Ctrl-C or SIGTERM stops it\n",
        first,
    ), first
    assert rest == f"livecall: worker {consumer} stopped\n"
    assert worker.returncode == 128 + signal.SIGTERM


@pytest.mark.parametrize("command", [["worker"], ["enqueue", "phonic", "--conversation-id", "c"]])
def test_an_unreachable_redis_is_exit_status_1_from_every_command(command, capsys):
    port = socket_nobody_listens_on()
    status = run([*command, "--redis", f"redis://default:s3cret-pass@127.0.0.1:{port}/0"])
    err = capsys.readouterr().err
    assert status == livecall.ExitStatus.FAILURE == 1, err
    what = "start the worker" if command == ["worker"] else "enqueue"
    assert err == (
        f"livecall: error: could not {what}: Redis at redis://127.0.0.1:{port}/0 failed (ConnectionError)\n"
    )


def socket_nobody_listens_on():
    """A loopback port just freed: connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_enqueue_help_describes_each_field_as_watch_does(capsys):
    with pytest.raises(SystemExit) as exit:
        run(["enqueue", "phonic", "--help"])
    assert exit.value.code == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert (
        "--conversation-id ID the conversation to watch (conv_...), from Phonic's API or dashboard"
        in help_text
    )


def test_enqueue_hiya_takes_the_user_id_from_the_environment(redis_server, redis_client, monkeypatch):
    monkeypatch.setenv("HIYA_CONVERSATION_TOKEN", "lct_secret-value")
    monkeypatch.setenv("HIYA_USER_ID", "user-from-env")
    assert run(["enqueue", "hiya", "--redis", redis_server.url]) == 0
    [(_, fields)] = redis_client.xrange(DEFAULT_REQUESTS)
    assert fields["user_id"] == "user-from-env"
