"""``livecall simulate``: a simulated call on loopback, and the watch command that reaches it."""

import re
import shlex
import signal
import subprocess
import sys

import attrs
import pytest
from cli_process import TIMEOUT, base_env, livecall, records

from livecall.testing import ScenarioOptions, Simulator


@pytest.mark.parametrize("provider, last_event", [("hiya", "call_ended"), ("phonic", "conversation_ended")])
def test_simulate_prints_a_watch_command_that_works_and_exits_after_the_call(running, provider, last_event):
    server = running(["simulate", provider, "--pace", "0"])
    assert "one call, exits once it has ended" in server.line("Simulating")
    command = shlex.split(server.line(f"livecall watch {provider}"))
    assert command[:3] == ["livecall", "watch", provider]
    result = livecall(*command[1:], "--format", "jsonl")
    assert result.returncode == 0, result.stderr
    events = [record["event"] for record in records(result.stdout)]
    assert events[-1] == last_event
    assert ("ack" in events) == (provider == "hiya"), "the Hiya command joins the call it waits on"
    assert server.wait(timeout=TIMEOUT) == 0, "the simulator exits once its one call is over"


def test_simulate_says_when_a_scenario_never_ends(running):
    server = running(["simulate", "phonic", "--scenario", "auth"])
    assert "never ends; Ctrl-C stops it" in server.line("Simulating")
    server.process.send_signal(signal.SIGINT)
    assert server.wait(timeout=TIMEOUT) == 130


def test_a_signal_stops_simulate_while_its_call_waits_for_a_watcher(running):
    server = running(["simulate", "hiya"])
    assert "exits once it has ended" in server.line("Simulating")
    server.process.send_signal(signal.SIGTERM)
    assert server.wait(timeout=TIMEOUT) == 143
    assert server.stderr == []


def test_simulate_lists_the_scenarios_without_options_the_command_cannot_set():
    result = livecall("simulate", "--list")
    assert result.returncode == 0
    rows = [line.split()[:2] for line in result.stdout.splitlines()]
    assert (
        ["hiya", "screening"] in rows
        and ["phonic", "conversation"] in rows
        and ["phonic", "auth-close"] in rows
    )
    options = {field.name for field in attrs.fields(ScenarioOptions)}
    named = options & set(re.findall(r"\w+", result.stdout))
    assert not named, f"--list names Simulator options livecall simulate cannot set: {sorted(named)}"


def test_demo_and_simulate_name_the_missing_extra():
    block_websockets = (
        "import sys; sys.modules['websockets'] = None; from livecall.cli import main; sys.exit(main())"
    )
    for command in ("demo", "simulate"):
        result = subprocess.run(
            [sys.executable, "-c", block_websockets, command],
            capture_output=True,
            text=True,
            env=base_env(),
            timeout=TIMEOUT,
        )
        assert result.returncode == 2
        assert "the simulator needs the websockets package" in result.stderr
        assert "pip install 'livecall[testing]'" not in result.stderr, "not on the package index"


@pytest.mark.parametrize("pace", [-1, float("nan"), float("inf"), "fast"])
def test_the_simulator_refuses_a_pace_that_is_no_pause(pace):
    with pytest.raises(ValueError, match="pace must be a number of seconds, 0 or more"):
        Simulator("phonic", pace=pace)
