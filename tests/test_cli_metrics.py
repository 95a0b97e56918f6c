"""``--metrics-port`` of ``livecall watch`` and ``watch-many``: the endpoint lives as long as the command,
``/readyz`` follows its connections, and what goes wrong is one line and exit status 2."""

import contextlib
import json
import re
import signal
import socket
import urllib.error
import urllib.request

import pytest
from cli_process import TIMEOUT, base_env, livecall

from livecall import ExitStatus
from livecall.testing import Simulator, wait_until

#: A plugin whose livecall_configure waits for a line on stdin: the endpoint is up, no watch yet.
HELD_IN_CONFIGURE = """
    import sys
    import livecall

    @livecall.hookimpl
    def livecall_configure(config):
        sys.stdin.readline()
"""

_START_LINE = re.compile(r"INFO livecall\.cli: metrics on (http://127\.0\.0\.1:(\d+))/metrics, probes on ")


def fetch(url):
    """``(status, body as JSON or text)``; an error status is an answer too."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        with error:
            status, body = error.code, error.read()
    text = body.decode()
    return status, json.loads(text) if text.startswith("{") else text


def served_at(process):
    """The endpoint's URL, from the start line ``-v`` prints (the port was 0: any free one)."""
    found = wait_until(
        lambda: _START_LINE.search("".join(process.stderr)) or process.process.poll() is not None,
        timeout=TIMEOUT,
    )
    assert found is not True, f"the command ended first: {''.join(process.stderr)}"
    return found.group(1)


def refused(url):
    with pytest.raises(urllib.error.URLError) as caught:
        urllib.request.urlopen(url + "/healthz", timeout=TIMEOUT)
    return isinstance(caught.value.reason, ConnectionRefusedError)


NOT_A_PORT = "argument --metrics-port: the value must be a port number, 0 to 65535"


def _line(sim, **extra):
    return json.dumps({"provider": sim.provider, **sim.client_kwargs(), **extra})


def test_readyz_follows_the_watch_and_the_endpoint_ends_with_the_command(running, plugin_env):
    env = plugin_env("held_in_configure", HELD_IN_CONFIGURE)
    with Simulator("hiya", "screening", join_timeout=10 * TIMEOUT) as sim:  # stays open until joined
        watch = sim.watch_args("--metrics-port", "0", "--stale-after", "120")
        process = running(["-v", "-p", "held_in_configure", *watch], env)
        url = served_at(process)
        assert fetch(url + "/readyz") == (503, {"status": "not ready", "reason": "not connected"})
        assert fetch(url + "/healthz") == (200, {"status": "ok"})
        assert sim.connections == (), "served before the plugins are configured, so before the watch"
        process.type_line()
        assert wait_until(lambda: fetch(url + "/readyz") == (200, {"status": "ready"}), timeout=TIMEOUT)
        status, metrics = fetch(url + "/metrics")
        assert status == 200 and 'livecall_calls_active{provider="hiya"} 1.0' in metrics
        process.process.send_signal(signal.SIGTERM)
        assert process.wait() == ExitStatus.TERMINATED
    assert refused(url), "the endpoint is closed with the watch"
    assert "Traceback" not in "".join(process.stderr)


def test_watch_many_is_ready_while_any_call_is_connected(running, plugin_env, tmp_path):
    env = plugin_env("held_in_configure", HELD_IN_CONFIGURE)
    with contextlib.ExitStack() as stack:
        waiting = stack.enter_context(Simulator("hiya", "screening", join_timeout=10 * TIMEOUT))
        ending = stack.enter_context(Simulator("phonic", "conversation"))
        lines = tmp_path / "calls.jsonl"
        lines.write_text(f"{_line(waiting)}\n{_line(ending)}\n")
        allow = [arg for sim in (waiting, ending) for arg in ("--allow-url", sim.url)]
        args = ["-v", "-p", "held_in_configure", "watch-many", str(lines), *allow, "--metrics-port", "0"]
        process = running(args, env)
        url = served_at(process)
        assert fetch(url + "/readyz") == (503, {"status": "not ready", "reason": "no watch connected"})
        process.type_line()
        assert wait_until(lambda: ending.call_ended, timeout=TIMEOUT)

        def phonic_over():
            metrics = fetch(url + "/metrics")[1]
            return 'livecall_calls_active{provider="phonic"} 0.0' in metrics and metrics

        metrics = wait_until(phonic_over, timeout=TIMEOUT)
        assert 'livecall_calls_active{provider="hiya"} 1.0' in metrics
        assert 'livecall_events_received_total{event="conversation_ended",provider="phonic"} 1.0' in metrics
        assert fetch(url + "/readyz") == (200, {"status": "ready"}), "the Hiya call is still connected"
        process.process.send_signal(signal.SIGTERM)
        assert process.wait() == ExitStatus.TERMINATED
    assert refused(url)


def test_a_watch_that_ends_closes_its_endpoint_and_says_nothing_without_v():
    with Simulator("phonic", "conversation") as sim:
        quiet = livecall(*sim.watch_args("--metrics-port", "0", "-q"))
    with Simulator("phonic", "conversation") as sim:
        told = livecall("-v", *sim.watch_args("--metrics-port", "0", "-q"))
    assert (quiet.returncode, quiet.stderr) == (0, ""), "the start line is progress: -v says it"
    assert told.returncode == 0, told.stderr
    assert len(_START_LINE.findall(told.stderr)) == 1
    assert refused(_START_LINE.search(told.stderr).group(1))


def test_a_port_in_use_is_one_line_and_status_2_before_anything_is_watched():
    with socket.socket() as taken, Simulator("phonic", "conversation") as sim:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = livecall(*sim.watch_args("--metrics-port", str(port)))
        watched = len(sim.connections)
    assert result.returncode == ExitStatus.USAGE
    said = f"livecall: error: cannot serve metrics on 127.0.0.1:{port}: Address already in use\n"
    assert result.stderr == said
    assert watched == 0 and result.stdout == ""


def test_without_prometheus_client_the_option_names_the_extra_and_a_plain_watch_still_works(tmp_path):
    blocked = tmp_path / "prometheus_client"
    blocked.mkdir()
    (blocked / "__init__.py").write_text("raise ImportError('prometheus_client is not installed here')\n")
    env = base_env(PYTHONPATH=str(tmp_path))
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*sim.watch_args("--metrics-port", "0"), env=env)
        watched = len(sim.connections)
    assert result.returncode == ExitStatus.USAGE and watched == 0
    assert result.stderr == (
        "livecall: error: metrics need prometheus_client: pip install 'livecall[metrics]'\n"
    )
    with Simulator("phonic", "conversation") as sim:
        plain = livecall(*sim.watch_args("-q"), env=env)
    assert (plain.returncode, plain.stderr) == (0, "")


@pytest.mark.parametrize(
    "options, message",
    [
        (["--metrics-port", "65536"], NOT_A_PORT),
        (["--metrics-port", "-1"], NOT_A_PORT),
        (["--metrics-port", "9464.5"], NOT_A_PORT),
        (["--metrics-port", "0", "--metrics-host", " "], "argument --metrics-host: expected a host name"),
        (["--metrics-port", "0", "--stale-after", "0"], "argument --stale-after: the value must be a number"),
        (["--stale-after", "5"], "--stale-after needs --metrics-port"),
        (["--metrics-host", "0.0.0.0"], "--metrics-host needs --metrics-port"),
    ],
    ids=["port too high", "negative port", "fractional port", "blank host", "stale 0", "stale", "host"],
)
@pytest.mark.parametrize("command", ["watch", "watch-many"])
def test_metrics_options_are_checked_as_usage_errors(command, options, message):
    if command == "watch":
        args = ["watch", "phonic", "--conversation-id", "conv_x", "--api-key", "key-for-the-check-only"]
        given = None
    else:
        args = ["watch-many"]
        given = json.dumps({"provider": "phonic", "conversation_id": "conv_x"})
    env = base_env(PHONIC_API_KEY="key-for-the-check-only")
    result = livecall(*args, *options, input=given, env=env)
    assert result.returncode == ExitStatus.USAGE
    assert result.stderr.startswith(f"livecall: error: {message}"), result.stderr
    assert result.stderr.count("\n") == 1
