"""The installed ``livecall`` command, run as a subprocess against the simulator on loopback."""

import http.server
import json
import os
import queue
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Optional

import attrs
import pytest

from livecall import ExitStatus, PhonicClient
from livecall.plugins import create_plugin_manager
from livecall.testing import ScenarioOptions, Simulator

_SCRIPT = shutil.which("livecall", path=os.path.dirname(sys.executable))
#: The console script installed next to this Python; ``-m livecall`` if there is none.
LIVECALL: list[str] = [_SCRIPT] if _SCRIPT else [sys.executable, "-m", "livecall"]
#: A bound, never a pause: commands normally finish in a fraction of it.
TIMEOUT = 30
KEYS = {"event", "provider", "call_id", "received_at"}
HIYA_EVENTS = (
    ["call_started"] + ["transcript"] * 5 + ["screening_ended"] + ["transcript"] * 3 + ["call_ended"]
)
CALLER = "+15551234567"


def base_env(**extra: str) -> dict[str, str]:
    """No stray credentials, no third-party plugins: the command sees only what a test gives it."""
    credentials = ("HIYA_TOKEN", "HIYA_CONVERSATION_TOKEN", "PHONIC_API_KEY", "PHONIC_SESSION_TOKEN")
    env = {k: v for k, v in os.environ.items() if k not in credentials}
    env["LIVECALL_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env.update(extra)
    return env


def livecall(*args: str, env: Optional[dict[str, str]] = None, **kwargs: Any) -> subprocess.CompletedProcess:
    kwargs.setdefault("timeout", TIMEOUT)
    return subprocess.run([*LIVECALL, *args], capture_output=True, text=True, env=env or base_env(), **kwargs)


def records(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


class Running:
    """A ``livecall`` process whose stdout lines can be awaited as they come."""

    def __init__(self, args: Sequence[str], env: Optional[dict[str, str]] = None):
        self.process = subprocess.Popen(
            [*LIVECALL, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or base_env(),
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._read, args=(self.process.stdout, self.stdout, self._lines)),
            threading.Thread(target=self._read, args=(self.process.stderr, self.stderr, queue.Queue())),
        ]
        for reader in self._readers:
            reader.start()

    @staticmethod
    def _read(stream: Any, lines: list[str], announce: "queue.Queue[str]") -> None:
        with stream:
            for line in stream:
                lines.append(line)
                announce.put(line)

    def line(self, containing: str = "") -> str:
        """The next stdout line with ``containing`` in it (``queue.Empty`` if none comes in time)."""
        while True:
            line = self._lines.get(timeout=TIMEOUT)
            if containing in line:
                return line

    def type_line(self) -> None:
        """What a plugin waiting on stdin waits for."""
        self.process.stdin.write("\n")
        self.process.stdin.close()

    def wait(self, timeout: float = TIMEOUT) -> int:
        """The exit status (``subprocess.TimeoutExpired`` if the process outlives ``timeout``)."""
        status = self.process.wait(timeout)
        self.process.stdin.close()
        for reader in self._readers:
            reader.join(TIMEOUT)
        return status

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.wait()


@pytest.fixture
def running():
    """Start ``livecall`` processes that are killed at teardown if a test left them running."""
    started: list[Running] = []

    def start(args: Sequence[str], env: Optional[dict[str, str]] = None) -> Running:
        started.append(Running(args, env))
        return started[-1]

    yield start
    for process in started:
        process.stop()


@pytest.fixture
def plugin_env(tmp_path):
    """Write a plugin module into ``tmp_path``; returns the env that lets ``-p`` import it."""

    def write(name: str, source: str, **extra: str) -> dict[str, str]:
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
        return base_env(PYTHONPATH=path, **extra)

    return write


#: A plugin that logs its hooks to the file named by RECORDER_LOG.
RECORDER = """
    import os
    import livecall

    def log(*words):
        with open(os.environ["RECORDER_LOG"], "a") as log_file:
            log_file.write(" ".join(words) + "\\n")

    @livecall.hookimpl
    def livecall_addoption(parser):
        parser.add_argument("--label", default="none")

    @livecall.hookimpl
    def livecall_configure(config):
        log("configure", config.options.label)

    @livecall.hookimpl
    def livecall_event(call, event):
        log("event", event.kind)

    @livecall.hookimpl
    def livecall_unconfigure(config):
        log("unconfigure")
"""


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- jsonl ---------------------------------------------------------------------


def test_hiya_jsonl_follows_the_contract_and_reports_the_join_ack():
    with Simulator("hiya", "screening") as sim:
        result = livecall(*sim.watch_args("--join", "--format", "jsonl"))
        sent = [json.loads(frame) for frame in sim.connections[0].received]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    lines = records(result.stdout)
    assert all(KEYS <= set(line) for line in lines)
    assert {line["provider"] for line in lines} == {"hiya"}
    assert len({line["call_id"] for line in lines}) == 1 and lines[0]["call_id"].startswith("call_")
    assert all(datetime.fromisoformat(line["received_at"]).tzinfo for line in lines)
    kinds = [line["event"] for line in lines]
    assert [kind for kind in kinds if kind != "ack"] == HIYA_EVENTS
    (ack,) = [line for line in lines if line["event"] == "ack"]
    assert sent == [{"type": "client:joinCall", "id": ack["ack_id"]}]
    assert 0 < kinds.index("ack") < kinds.index("call_ended")
    started = lines[0]
    assert started["phone"] == CALLER and datetime.fromisoformat(started["timestamp"]).tzinfo
    first = lines[1]
    assert first["role"] == "assistant" and first["text"].startswith("Hi, this is Alex")
    assert isinstance(first["offset"], float) and first["item_idx"] is None
    assert [line["role"] for line in lines if line["event"] == "transcript"][-3:] == ["user", "other", "user"]
    assert lines[kinds.index("screening_ended")]["message"].startswith("Screening done")


def test_phonic_jsonl_has_snapshots_derived_lines_and_the_end():
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*sim.watch_args("--format", "jsonl"))
    assert result.returncode == 0, result.stderr
    lines = records(result.stdout)
    assert all(KEYS <= set(line) for line in lines)
    assert {line["call_id"] for line in lines} == {"conv_simulated-0001"}
    assert lines[0]["event"] == "conversation_updated" and lines[-1]["event"] == "conversation_ended"
    assert {line["event"] for line in lines} == {"conversation_updated", "transcript", "conversation_ended"}
    said = [(line["item_idx"], line["role"], line["text"]) for line in lines if line["event"] == "transcript"]
    assert said[:3] == [
        (0, "assistant", "Hello! Thanks for calling Sunrise Dental, how can I help you today?"),
        (1, "user", "Hi, I'd like to book"),
        (1, "user", "Hi, I'd like to book a cleaning for next week."),
    ]
    assert [idx for idx, _, _ in said] == [0, 1, 1, 2, 3, 4]
    assert all(line["offset"] is None for line in lines if line["event"] == "transcript")
    final = [line for line in lines if line["event"] == "conversation_updated"][-1]["conversation"]
    assert final["id"] == "conv_simulated-0001" and len(final["items"]) == 5


# --- text ------------------------------------------------------------------------


def test_hiya_text_is_a_transcript_a_person_reads():
    with Simulator("hiya", "screening") as sim:
        result = livecall(*sim.watch_args("--join"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert re.fullmatch(r"== hiya call call_\w+", lines[0])
    body = [line.split("  ", 1)[1] for line in lines[1:-1]]
    assert all(re.match(r"\d\d:\d\d:\d\d  ", line) for line in lines[1:-1])
    assert body[0] == f"--         call started, caller {CALLER}"
    assert "assistant  Hi, this is Alex's call assistant. May I ask who is calling?" in body
    assert "other      Hi, it's Jordan from Dr. Lee's office." in body
    assert "--         screening ended: Screening done: Jordan, Dr. Lee's office, appointment" in body
    assert "--         joined the call" in body
    assert body[-2:] == ["user       Thanks, bye!", "--         call ended"]
    assert re.fullmatch(r"== hiya call call_\w+: the call ended", lines[-1])


def test_phonic_text_marks_revised_lines_and_hides_snapshots():
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*sim.watch_args("--format", "text"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "== phonic call conv_simulated-0001"
    assert lines[1].endswith(f"--         caller {CALLER}")
    assert lines[3].endswith("user       Hi, I'd like to book")
    assert lines[4].endswith("user       Hi, I'd like to book a cleaning for next week.  (revised)")
    assert lines[-2].endswith("--         conversation ended")
    assert lines[-1] == "== phonic call conv_simulated-0001: the call ended"
    assert len(lines) == 1 + 1 + 6 + 1 + 1, "one line per transcript, none per snapshot"


def test_phonic_text_marks_redactions_and_shows_tool_calls():
    with Simulator("phonic", "sdk") as sim:
        result = livecall(*sim.watch_args("--format", "text"))
    assert result.returncode == 0, result.stderr
    body = [line.split("  ", 1)[1] for line in result.stdout.splitlines()[1:-1]]
    assert body[0] == f"--         calling {CALLER}"
    assert "user       Could we move it? You can text me at [PHONE NUMBER].  (redacted)" in body
    assert "user       Thanks, I'm [NAME]." in body, "a turn redacted from the start is no revision"
    assert body.count("--         tool call reschedule_appointment") == 1
    assert "--         tool call reschedule_appointment -> 200.0" in body


def test_phonic_jsonl_has_tool_calls_and_the_snapshots_as_sent():
    with Simulator("phonic", "sdk") as sim:
        result = livecall(*sim.watch_args("--format", "jsonl"))
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    tool_calls = [record for record in records if record["event"] == "tool_call"]
    assert [(r["name"], r["status_code"], r["revised"]) for r in tool_calls] == [
        ("reschedule_appointment", None, False),
        ("reschedule_appointment", 200.0, True),
    ]
    first = next(record for record in records if record["event"] == "conversation_updated")
    assert first["conversation"]["items"] == [] and first["conversation"]["ended_at"] is None


def test_reconnects_and_bad_frames_are_marked_in_the_text():
    with Simulator("hiya", "malformed+drop", join_timeout=0, drop_mode=1012, lose=0) as sim:
        result = livecall(*sim.watch_args("--ping-interval", "5"))
    assert result.returncode == 0, result.stderr
    alerts = [line.split("!!", 1)[1].strip() for line in result.stdout.splitlines() if "  !!  " in line]
    assert any(alert.startswith("connection lost (closed with code 1012") for alert in alerts)
    assert any(alert.startswith("undecodable message skipped: invalid JSON") for alert in alerts)
    assert "unknown message type 'event:mystery'" in result.stdout


# --- exit statuses -------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "required: COMMAND"),
        (["listen"], "invalid choice: 'listen'"),
        (["watch", "phonic", "--api-key", "k"], "required: --conversation-id"),
        (
            ["watch", "phonic", "--conversation-id", "c", "--api-key", "k", "--max-retries", "-1"],
            "--max-retries",
        ),
        (["watch", "phonic", "--conversation-id", "c", "--api-key", "k", "--format", "xml"], "--format"),
        (
            ["watch", "phonic", "--conversation-id", "c", "--api-key", "k", "--session-token", "t"],
            "not allowed",
        ),
        (["watch", "phonic", "--conversation-id", "c"], "livecall: error: Phonic needs --api-key"),
        (
            ["watch", "hiya", "--conversation-token", "t", "--user-id", "u"],
            "livecall: error: Hiya needs a bearer",
        ),
        (["watch", "phonic", "--conversation-id", "c", "--api-key", "k", "--url", "http://x"], "ws://"),
        (["-p", "no_such_plugin_module", "plugins"], "no plugin module named 'no_such_plugin_module'"),
        (["simulate", "hiya", "--scenario", "nope"], "unknown hiya scenario 'nope'"),
    ],
)
def test_bad_usage_exits_2_with_a_clear_message(args, message):
    result = livecall(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_refused_handshake_exits_3(provider):
    with Simulator(provider, "auth") as sim:
        result = livecall(*sim.watch_args())
        attempts = len(sim.connections)
    assert result.returncode == 3
    assert "refused the credentials (HTTP 401)" in result.stderr
    assert attempts == 1, "refused credentials are never retried"


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_close_1008_exits_3_with_the_servers_message(provider):
    with Simulator(provider, "auth-close") as sim:
        result = livecall(*sim.watch_args())
    assert result.returncode == 3
    (error,) = result.stderr.splitlines()
    assert error.startswith("livecall: error: ") and error.endswith(": invalid or expired credentials")
    assert "server error: invalid or expired credentials" in result.stdout
    assert result.stdout.splitlines()[-1].endswith(": the credentials were refused")


def test_giving_up_exits_4():
    url = f"ws://127.0.0.1:{closed_port()}"
    result = livecall(
        "watch", "phonic", "--url", url, "--conversation-id", "c", "--api-key", "k", "--max-retries", "1"
    )
    assert result.returncode == 4
    assert "livecall: error: gave up after 1 failed reconnect attempts" in result.stderr
    assert "reconnecting in" in result.stdout


def test_a_refused_handshake_that_is_not_about_credentials_exits_1():
    with Simulator("hiya", "screening") as sim:
        args = sim.watch_args()
        args[args.index(sim.url)] = sim.url + "/wrong-prefix"
        result = livecall(*args)
    assert result.returncode == 1
    assert "refused the WebSocket handshake (HTTP 404)" in result.stderr


# --- signals -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "signum, status",
    [
        (signal.SIGINT, ExitStatus.INTERRUPTED),
        (signal.SIGTERM, ExitStatus.TERMINATED),
        (signal.SIGHUP, ExitStatus.HUNG_UP),
    ],
)
def test_a_signal_closes_with_1000_flushes_plugins_and_exits(running, plugin_env, tmp_path, signum, status):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path))
    with Simulator("hiya", "screening", join_timeout=TIMEOUT) as sim:  # waits for a join that never comes
        process = running(["-p", "recorder_plugin", *sim.watch_args()], env)
        process.line("screening ended")
        process.process.send_signal(signum)
        assert process.wait(timeout=TIMEOUT) == status
        sim.wait_for(lambda: sim.connections[0].closed, timeout=5)
        close_code = sim.connections[0].client_close_code
    assert close_code == 1000
    assert process.stdout[-1].endswith(": stopped watching\n")
    assert log_path.read_text().splitlines()[-1] == "unconfigure"
    assert "Traceback" not in "".join(process.stderr)


def test_a_watch_signalled_run_after_run_exits_every_time(running):
    """A signal used to be raised inside the wait, and could leave a lock taken that a thread then
    waited on forever: a watch hung now and then.  Every one of these must exit with its status."""
    for signum in [signal.SIGINT, signal.SIGTERM, signal.SIGHUP] * 4:
        with Simulator("hiya", "screening", join_timeout=TIMEOUT) as sim:  # waits for a join
            process = running(sim.watch_args("--format", "jsonl"))
            process.line('"screening_ended"')
            process.process.send_signal(signum)
            assert process.wait(timeout=TIMEOUT) == 128 + signum, "".join(process.stderr)
            assert sim.wait_for(lambda: sim.connections[0].client_close_code, timeout=TIMEOUT) == 1000
        assert process.stderr == []


#: A plugin that stops in configure or unconfigure (PAUSE_IN) until a line comes on stdin.
PAUSING = """
    import os
    import sys
    import livecall

    def pause(hook):
        if os.environ["PAUSE_IN"] == hook:
            print("paused in", hook, flush=True)
            sys.stdin.readline()
        with open(os.environ["RECORDER_LOG"], "a") as log_file:
            log_file.write(hook + "\\n")

    @livecall.hookimpl
    def livecall_configure(config):
        pause("configure")

    @livecall.hookimpl
    def livecall_unconfigure(config):
        pause("unconfigure")
"""


@pytest.mark.parametrize("hook", ["configure", "unconfigure"])
def test_a_signal_waits_for_plugins_to_finish_setting_up_or_flushing(running, plugin_env, tmp_path, hook):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("pausing_plugin", PAUSING, RECORDER_LOG=str(log_path), PAUSE_IN=hook)
    with Simulator("phonic", "conversation") as sim:
        process = running(["-p", "pausing_plugin", *sim.watch_args()], env)
        process.line(f"paused in {hook}")
        process.process.send_signal(signal.SIGTERM)
        process.type_line()
        assert process.wait(timeout=TIMEOUT) == 143
        watched = len(sim.connections)
    assert log_path.read_text().splitlines() == ["configure", "unconfigure"]
    assert watched == (0 if hook == "configure" else 1), (
        "a signal while setting up stops the run before the watch"
    )


def test_ctrl_c_while_reconnecting_exits_at_once(running):
    url = f"ws://127.0.0.1:{closed_port()}"
    process = running(
        [
            "watch",
            "phonic",
            "--url",
            url,
            "--conversation-id",
            "c",
            "--api-key",
            "key-0123456789",
            "--max-retries",
            "50",
        ]
    )
    process.line("reconnecting in")
    process.process.send_signal(signal.SIGINT)
    assert process.wait(timeout=TIMEOUT) == 130
    assert process.stderr == []


# --- plugins -------------------------------------------------------------------------


def test_dash_p_loads_a_plugin_with_its_options_and_hooks(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path))
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "recorder_plugin", *sim.watch_args("--label", "nightly"), env=env)
    assert result.returncode == 0, result.stderr
    logged = log_path.read_text().splitlines()
    assert logged[0] == "configure nightly" and logged[-1] == "unconfigure"
    assert logged[1:-1].count("event transcript") == 6
    assert logged[-2] == "event conversation_ended"
    assert "== phonic call" in result.stdout, "the built-in output still prints"


def test_plugins_lists_built_in_and_loaded_plugins(plugin_env, tmp_path):
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(tmp_path / "unused.log"))
    result = livecall("-p", "recorder_plugin", "plugins", "--json", env=env)
    assert result.returncode == 0, result.stderr
    plugins = {plugin["name"]: plugin for plugin in json.loads(result.stdout)}
    assert plugins["recorder_plugin"] == {
        "name": "recorder_plugin",
        "version": None,
        "distribution": None,
        "hooks": ["livecall_addoption", "livecall_configure", "livecall_event", "livecall_unconfigure"],
        "classes": {},
        "error": None,
    }
    assert plugins["output"]["hooks"] == ["livecall_addoption", "livecall_configure"]
    text = livecall("-p", "recorder_plugin", "plugins", env=env).stdout
    assert "output (built-in)\n  hooks: livecall_addoption," in text
    assert "recorder_plugin (module)\n  hooks: livecall_addoption, livecall_configure, livecall_event" in text


def test_no_output_disables_the_built_in_printer():
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "no:output", *sim.watch_args())
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    listed = json.loads(livecall("-p", "no:output", "plugins", "--json").stdout)
    assert "output" not in {plugin["name"] for plugin in listed}


def test_the_output_plugin_prints_nothing_for_a_library_client(capsys):
    pm = create_plugin_manager(autoload=False)
    assert pm.get_plugin("output") is not None
    with Simulator("phonic", "conversation") as sim:
        PhonicClient(**sim.client_kwargs(), plugin_manager=pm).run()
    assert capsys.readouterr() == ("", "")


def test_plugin_failures_are_isolated_and_set_the_status(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env(
        "failing_plugin",
        """
        import livecall

        @livecall.hookimpl
        def livecall_event(call, event):
            raise RuntimeError("event hook broke")

        @livecall.hookimpl
        def livecall_unconfigure(config):
            config.fail(5, "2 rows were not delivered")
            raise RuntimeError("flush broke")
        """,
    )
    env.update(plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path)))
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "recorder_plugin", "-p", "failing_plugin", *sim.watch_args(), env=env)
    assert result.returncode == 5, "the highest status a plugin reported"
    assert (
        "livecall: error: plugin 'failing_plugin' failed in livecall_event: RuntimeError: event hook broke"
        in (result.stderr)
    )
    assert "livecall: error: 2 rows were not delivered" in result.stderr
    assert "livecall: error: plugin 'failing_plugin' failed in livecall_unconfigure" in result.stderr
    assert "Traceback" not in result.stderr
    assert log_path.read_text().splitlines()[-1] == "unconfigure", "the other plugin still flushed"
    assert result.stdout.splitlines()[-1].endswith(": the call ended")


def test_a_plugin_refusing_its_configuration_stops_the_run(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env(
        "strict_plugin",
        """
        import livecall

        @livecall.hookimpl
        def livecall_configure(config):
            raise livecall.ConfigurationError("--target is required")
        """,
    )
    env.update(plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path)))
    with Simulator("phonic", "conversation") as sim:
        result = livecall("-p", "recorder_plugin", "-p", "strict_plugin", *sim.watch_args(), env=env)
        connections = len(sim.connections)
    assert result.returncode == 2
    assert result.stderr == (
        "livecall: error: plugin 'strict_plugin' failed in livecall_configure: "
        "ConfigurationError: --target is required\n"
    )
    assert connections == 0, "nothing is watched"
    assert log_path.read_text().splitlines() == ["configure none", "unconfigure"]


# --- secrets -------------------------------------------------------------------------


SECRETS = {
    "hiya": {"token": "tok-SECRET-7f3a", "conversation_token": "lct-SECRET-91bd"},
    "phonic": {"api_key": "key-SECRET-c4e2"},
}
ENV_FLAGS = {"hiya": ("--token", "HIYA_TOKEN"), "phonic": ("--api-key", "PHONIC_API_KEY")}


@pytest.mark.parametrize(
    "provider, scenario, via_env",
    [
        ("hiya", "drop", False),
        ("hiya", "drop", True),
        ("hiya", "auth-close", True),
        ("phonic", "drop", False),
        ("phonic", "auth-close", True),
    ],
)
@pytest.mark.parametrize("output_format", ["text", "jsonl"])
def test_no_secret_reaches_stdout_or_stderr_at_vv(provider, scenario, via_env, output_format):
    with Simulator(provider, scenario, **SECRETS[provider]) as sim:
        args = sim.watch_args("--join") if provider == "hiya" else sim.watch_args()
        env = base_env()
        if via_env:  # the bearer token or API key from the environment instead of a flag
            flag, variable = ENV_FLAGS[provider]
            env[variable] = args.pop(args.index(flag) + 1)
            args.remove(flag)
        result = livecall("-vv", *args, "--format", output_format, env=env)
    assert result.returncode == (3 if scenario == "auth-close" else 0), result.stderr
    assert result.stderr, "-vv logged something"
    assert "SECRET" not in result.stdout + result.stderr


def token_command_args(sim: Simulator, command: str) -> list[str]:
    """``sim.watch_args()`` with ``--token-command`` where ``--token`` was."""
    args = sim.watch_args()
    del args[args.index("--token") : args.index("--token") + 2]
    return [*args, "--token-command", command]


def counting_command(tmp_path: Path, secret: str) -> tuple[str, Path]:
    """A command printing ``secret`` that notes each of its runs in the file it returns."""
    runs = tmp_path / "runs"
    script = tmp_path / "secret.py"
    script.write_text(f"import sys\nopen(sys.argv[1], 'a').write('run\\n')\nprint({secret!r})\n")
    return f"{shlex.quote(sys.executable)} {script} {runs}", runs


def test_hiya_token_command_is_run_for_every_connection_and_never_shown(tmp_path):
    command, counter = counting_command(tmp_path, "tok-SECRET-from-command")
    with Simulator("hiya", "screening+drop", join_timeout=0.2, token="tok-SECRET-from-command") as sim:
        args = token_command_args(sim, command)
        result = livecall("-vv", *args, "--format", "jsonl")
        accepted = [record.header("Authorization") for record in sim.connections if record.accepted]
    assert result.returncode == 0, result.stderr
    assert len(accepted) >= 2 and set(accepted) == {"Bearer tok-SECRET-from-command"}
    assert len(counter.read_text().splitlines()) == len(sim.connections)
    assert "reconnecting" in result.stderr.lower() and "SECRET" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "command, why",
    [
        ("-c 'import sys; print(\"tok-SECRET-leaked\"); sys.exit(9)'", "exited with status 9"),
        ("-c 'pass'", "printed nothing"),
    ],
)
def test_a_failing_hiya_token_command_is_one_line_and_exit_status_2(command, why):
    with Simulator("hiya") as sim:
        args = token_command_args(sim, f"{shlex.quote(sys.executable)} {command}")
        result = livecall(*args)
    assert result.returncode == ExitStatus.USAGE
    (line,) = result.stderr.splitlines()
    assert "hiya token command" in line and why in line and "SECRET" not in result.stdout + result.stderr
    assert sim.connections == ()  # nothing was sent without a token


def test_a_plugin_gives_the_hiya_token_before_the_command(plugin_env, tmp_path):
    ran = tmp_path / "ran"
    env = plugin_env(
        "vault_plugin",
        """
        import livecall

        @livecall.hookimpl
        def livecall_credential(provider, name):
            return "tok-SECRET-from-vault" if (provider, name) == ("hiya", "token") else None
        """,
    )
    with Simulator("hiya", join_timeout=0.2, token="tok-SECRET-from-vault") as sim:
        args = token_command_args(sim, f"touch {ran}")
        result = livecall("-p", "vault_plugin", *args, "--format", "jsonl", env=env)
    assert result.returncode == 0, result.stderr
    assert records(result.stdout)[-1]["event"] == "call_ended"
    assert not ran.exists()  # the plugin answered: the command never ran


def test_phonic_api_key_command_is_run_for_every_connection(tmp_path):
    command, counter = counting_command(tmp_path, "key-SECRET-from-command")
    with Simulator("phonic", "drop", api_key="key-SECRET-from-command") as sim:
        args = sim.watch_args()
        del args[args.index("--api-key") : args.index("--api-key") + 2]
        result = livecall("-vv", *args, "--api-key-command", command, "--format", "jsonl")
        accepted = [record.header("Authorization") for record in sim.connections if record.accepted]
    assert result.returncode == 0, result.stderr
    assert len(accepted) >= 2 and set(accepted) == {"Bearer key-SECRET-from-command"}
    assert len(counter.read_text().splitlines()) == len(sim.connections)
    assert "SECRET" not in result.stdout + result.stderr


def test_hiya_token_and_token_command_exclude_each_other():
    result = livecall("watch", "hiya", "--token", "tok-123456789", "--token-command", "true")
    assert result.returncode == ExitStatus.USAGE and "not allowed with" in result.stderr


def test_phonic_session_token_stays_secret_at_vv():
    with Simulator("phonic", "auth-close", session_token="sess-SECRET-0a9f") as sim:
        conversation_id = sim.credentials["conversation_id"]
        result = livecall(
            "-vv",
            "watch",
            "phonic",
            "--url",
            sim.url,
            "--conversation-id",
            conversation_id,
            "--session-token",
            "sess-SECRET-0a9f",
        )
    assert result.returncode == 3
    assert "Traceback" in result.stderr and "SECRET" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "provider, flag, variable",
    [
        ("hiya", "--token", "HIYA_TOKEN"),
        ("hiya", "--conversation-token", "HIYA_CONVERSATION_TOKEN"),
        ("phonic", "--api-key", "PHONIC_API_KEY"),
    ],
)
def test_every_credential_can_come_from_the_environment(provider, flag, variable):
    with Simulator(provider, join_timeout=0) as sim:  # a Hiya call that waits for no join
        args = sim.watch_args("--format", "jsonl")
        value = args.pop(args.index(flag) + 1)
        args.remove(flag)
        missing = livecall(*args)
        result = livecall(*args, env=base_env(**{variable: value}))
    assert missing.returncode == 2 and variable in missing.stderr
    assert result.returncode == 0, result.stderr
    assert value not in result.stdout + result.stderr


def test_phonic_session_token_can_come_from_the_environment():
    with Simulator("phonic") as sim:
        token = sim.credentials["session_token"]
        args = ["watch", "phonic", "--url", sim.url, "--conversation-id", sim.credentials["conversation_id"]]
        result = livecall(*args, "--format", "jsonl", env=base_env(PHONIC_SESSION_TOKEN=token))
        record = sim.connections[0]
    assert result.returncode == 0, result.stderr
    assert record.query["session_token"] == token and record.header("Authorization") is None


# --- simulate and demo ------------------------------------------------------------


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
    block_websockets = "import sys; sys.modules['websockets'] = None; from livecall.cli import main; main()"
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


#: Stands in for the CSV plugin: the demo sets a default for its --csv option.
FAKE_CSV = """
    import livecall

    rows = []

    @livecall.hookimpl
    def livecall_addoption(parser):
        parser.add_argument("--csv", metavar="PATH")

    @livecall.hookimpl
    def livecall_transcript(call, transcript):
        rows.append(f"{call.provider},{transcript.role}")

    @livecall.hookimpl
    def livecall_unconfigure(config):
        if config.options.csv:
            with open(config.options.csv, "w") as out:
                out.write("\\n".join(rows))
"""


def test_demo_watches_both_calls_through_the_plugins_and_exits_0(plugin_env, tmp_path):
    result = livecall(
        "-p",
        "fake_csv",
        "demo",
        "--pace",
        "0",
        cwd=tmp_path,
        env=plugin_env("fake_csv", FAKE_CSV),
        timeout=15,
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    headers = [line for line in lines if line.startswith("== ")]
    assert [header.split()[1] for header in headers] == ["hiya", "hiya", "phonic", "phonic"]
    assert headers[1].endswith(": the call ended") and headers[3].endswith(": the call ended")
    joined = next(i for i, line in enumerate(lines) if line.endswith("--         joined the call"))
    assert "screening ended" in lines[joined - 1] and lines[joined + 1].split()[1] == "user"
    assert any(
        line.endswith("assistant  Great, you're booked for Tuesday at 10 am. See you then!") for line in lines
    )
    rows = (tmp_path / "livecall-demo.csv").read_text().splitlines()
    assert [row.split(",")[0] for row in rows] == ["hiya"] * 8 + ["phonic"] * 6
    assert f"The CSV plugin wrote {tmp_path / 'livecall-demo.csv'}" in result.stderr


def test_a_signal_ends_the_demo_with_the_call_it_watches(running):
    process = running(["demo"])
    process.line("hiya")  # the first call is being watched
    process.process.send_signal(signal.SIGINT)
    assert process.wait(timeout=TIMEOUT) == 130
    narration = "".join(process.stderr)
    assert "A Hiya call" in narration and "A Phonic conversation" not in narration
    assert process.stdout[-1].endswith(": stopped watching\n")


def test_the_demo_csv_default_stays_out_of_watch(plugin_env, tmp_path):
    with Simulator("phonic", "conversation") as sim:
        result = livecall(
            "-p", "fake_csv", *sim.watch_args(), cwd=tmp_path, env=plugin_env("fake_csv", FAKE_CSV)
        )
    assert result.returncode == 0, result.stderr
    assert list(tmp_path.iterdir()) == [tmp_path / "fake_csv.py"]


def test_plugins_add_commands(plugin_env):
    env = plugin_env(
        "hello_plugin",
        """
        import livecall

        def hello(config):
            config.stdout.write(f"hello {config.options.name}\\n")
            return 7

        @livecall.hookimpl
        def livecall_register_commands(subparsers):
            parser = subparsers.add_parser("hello")
            parser.add_argument("name")
            parser.set_defaults(func=hello)
        """,
    )
    result = livecall("-p", "hello_plugin", "hello", "world", env=env)
    assert (result.returncode, result.stdout) == (7, "hello world\n")


def test_ctrl_c_stops_a_plugins_command(running, plugin_env):
    env = plugin_env(
        "blocking_plugin",
        """
        import sys
        import livecall

        def block(config):
            print("blocking", flush=True)
            sys.stdin.readline()
            return 0

        @livecall.hookimpl
        def livecall_register_commands(subparsers):
            subparsers.add_parser("block").set_defaults(func=block)
        """,
    )
    process = running(["-p", "blocking_plugin", "block"], env)
    process.line("blocking")
    process.process.send_signal(signal.SIGINT)
    assert process.wait(timeout=TIMEOUT) == 130


def test_python_dash_m_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "livecall", "--version"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0
    assert re.fullmatch(r"livecall \d+\.\d+\.\d+\S*\n", result.stdout)


@pytest.mark.parametrize(
    "scenario, options",
    [("flood", {"flood_count": 100_000}), ("screening", {"join_timeout": 10 * TIMEOUT})],
    ids=["busy", "waiting"],
)
def test_a_closed_pipe_ends_the_watch_promptly_and_cleanly(scenario, options):
    """``livecall watch ... | head -2``: once ``head`` has its lines, the watch ends with a
    close frame, even when the call goes on for minutes (waiting for a join), and exits 0."""
    with Simulator("hiya", scenario, **options) as sim:
        process = subprocess.Popen(
            [*LIVECALL, *sim.watch_args("--format", "jsonl")],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(),
        )
        try:
            assert json.loads(process.stdout.readline())["event"] == "call_started"
            assert json.loads(process.stdout.readline())["event"] == "transcript"
            process.stdout.close()  # like `| head -2`
            _, stderr = process.communicate(timeout=TIMEOUT)
        finally:
            process.kill()
        sim.wait_for(lambda: sim.connections[0].closed, timeout=TIMEOUT)
        close_code, call_ended = sim.connections[0].client_close_code, sim.call_ended
    assert process.returncode == 0
    assert stderr == ""
    assert close_code == 1000 and not call_ended, "the watch stopped before the call ended"


PHONIC_ARGS = ["watch", "phonic", "--conversation-id", "c", "--api-key", "key-0123456789"]


@pytest.mark.parametrize(
    "args, message",
    [
        ([*PHONIC_ARGS, "--url", "ws://"], "url has no host: 'ws://'"),
        ([*PHONIC_ARGS, "--url", "ws://example.com:99999"], "Port out of range"),
        ([*PHONIC_ARGS, "--url", "ws://example.com:abc"], "url is not a valid URL"),
        ([*PHONIC_ARGS, "--url", "ws://[::1"], "Invalid IPv6 URL"),
        ([*PHONIC_ARGS, "--url", "ws://[zz::1]:80"], "url is not a valid URL"),
        ([*PHONIC_ARGS, "--url", ""], "url must start with ws:// or wss://, not ''"),
        ([*PHONIC_ARGS, "--url", "wss://me:pw@example.com"], "must not hold a user name or password"),
        (
            ["watch", "hiya", "--token", "tok-0123456789", "--conversation-token", "ct-0123456789"]
            + ["--user-id", os.fsdecode(b"caf\xe9")],
            "livecall: error: user_id must be printable text",
        ),
        (
            ["watch", "phonic", "--conversation-id", "c\r\nX-Injected: 1", "--api-key", "key-0123456789"],
            "printable",
        ),
        (["-p", "livecall_csv", *PHONIC_ARGS, "--csv", "{tmp}"], "it is a directory"),
        (
            ["-p", "livecall_webhook", *PHONIC_ARGS, "--webhook-url", "http://127.0.0.1:9/"]
            + ["--webhook-drain-timeout", "nan"],
            "--webhook-drain-timeout must be a number of seconds",
        ),
        (["simulate", "--pace", "nan"], "--pace"),
        (["plugins", "\x1b]52;c;ZXZpbA==\x07"], "unrecognized arguments: \\x1b]52;c;ZXZpbA==\\x07"),
        (["watch", "phonic", "--api-key", "key-0123456789"], "(see: livecall watch phonic --help)"),
    ],
)
def test_every_mistake_exits_2_with_one_error_line_and_no_traceback(tmp_path, args, message):
    result = livecall(*[arg.format(tmp=tmp_path) for arg in args])
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("livecall: error: ") and result.stderr.count("\n") == 1, result.stderr


def test_stdout_on_a_full_disk_fails_the_run_with_one_line():
    with Simulator("hiya", join_timeout=0.1) as sim, open("/dev/full", "w") as full:
        result = subprocess.run(
            [*LIVECALL, *sim.watch_args()],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(),
            timeout=TIMEOUT,
        )
    assert result.returncode == 1
    assert (
        result.stderr
        == "livecall: error: cannot write to stdout: No space left on device; printing stopped\n"
    )


def test_a_closed_stdout_is_one_line_and_a_failure():
    result = subprocess.run(
        ["sh", "-c", 'exec "$@" >&-', "sh", *LIVECALL, "plugins"],
        stderr=subprocess.PIPE,
        text=True,
        env=base_env(),
        timeout=TIMEOUT,
    )
    assert result.returncode == 1
    assert result.stderr == "livecall: error: stdout is closed; to discard the output, send it to /dev/null\n"


def test_a_full_disk_under_a_command_that_prints_at_once_is_a_failure_too():
    with open("/dev/full", "w") as full:
        result = subprocess.run(
            [*LIVECALL, "plugins"],
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(),
            timeout=TIMEOUT,
        )
    assert result.returncode == 1
    assert "No space left on device" in result.stderr and "Traceback" not in result.stderr


# --- global options anywhere, -v, -vv and --quiet ----------------------------------------


@pytest.mark.parametrize("before", [True, False], ids=["before", "after"])
def test_global_options_work_before_and_after_the_command(plugin_env, tmp_path, before):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path))
    global_options = ["-v", "-p", "no:output", "-p", "recorder_plugin"]
    with Simulator("phonic", "conversation") as sim:
        args = [*global_options, *sim.watch_args()] if before else [*sim.watch_args(), *global_options]
        result = livecall(*args, "--label", "anywhere", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "", "-p no:output took effect"
    assert log_path.read_text().splitlines()[0] == "configure anywhere", "-p loaded the plugin"
    assert "INFO livecall.connection: connecting to" in result.stderr, "-v took effect"


def test_quiet_silences_the_printer_and_plugins_still_run(plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("recorder_plugin", RECORDER, RECORDER_LOG=str(log_path))
    for quiet in (["-q"], ["--quiet"]):
        with Simulator("phonic", "conversation") as sim:
            result = livecall("-p", "recorder_plugin", *sim.watch_args("--format", "jsonl", *quiet), env=env)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert log_path.read_text().count("event transcript") == 2 * 6


def test_v_logs_the_connection_its_handshake_and_reconnect_decisions():
    with Simulator("hiya", "drop", join_timeout=0, **SECRETS["hiya"]) as sim:
        result = livecall(*sim.watch_args(), "-v")
        url = f"{sim.url}/ws/v1/liveCalls"
    assert result.returncode == 0, result.stderr
    progress = [line.split(" livecall.connection: ", 1)[1] for line in result.stderr.splitlines()]
    assert progress[:2] == [f"connecting to {url}", f"handshake with {url}: HTTP 101, connected"]
    assert re.fullmatch(r"connection lost \(.+\); reconnecting in [\d.]+ s, attempt 1", progress[2])
    assert progress[3:5] == progress[:2]
    assert progress[-1] in (  # whichever came first: the call's last event or the server's close
        "connection closed (code 1000); the call ended",
        "not reconnecting: the server closed the connection normally",
    )
    assert "SECRET" not in result.stderr and "conversationToken" not in result.stderr
    assert "frame" not in result.stderr, "frames are for -vv"


def test_v_says_why_it_does_not_reconnect():
    url = f"ws://127.0.0.1:{closed_port()}"
    result = livecall(
        "watch",
        "phonic",
        "--url",
        url,
        "--conversation-id",
        "c",
        "--api-key",
        "k",
        "-v",
        "--max-retries",
        "1",
    )
    assert result.returncode == 4
    assert "not reconnecting: gave up after 1 failed reconnect attempts; last: could not connect to" in (
        result.stderr
    )


def test_vv_logs_frames_pings_and_pongs_but_no_payload():
    # Paced, with a short ping interval: the client pings in the pauses.
    with Simulator("phonic", "conversation", pace=0.3, **SECRETS["phonic"]) as sim:
        result = livecall(*sim.watch_args("--ping-interval", "0.1", "-vv"))
    assert result.returncode == 0, result.stderr
    logged = result.stderr
    assert re.search(r"DEBUG livecall.connection: frame in: text, \d+ bytes", logged)
    assert re.search(r"DEBUG livecall.connection: ping sent after [\d.]+ s of silence", logged)
    assert re.search(r"DEBUG livecall.connection: frame in: pong, 0 bytes", logged)
    assert "frame out: close, code 1000" in logged or "closing handshake's reply" in logged
    assert "Sunrise Dental" not in logged and "SECRET" not in logged, "no payload, no secret"


# --- cron: time limits ---------------------------------------------------------------------


def test_max_duration_ends_the_watch_with_its_own_status():
    with Simulator("phonic", "conversation", pace=10 * TIMEOUT) as sim:  # a call that goes on and on
        result = livecall(*sim.watch_args("--max-duration", "0.5", "--format", "jsonl"))
        sim.wait_for(lambda: sim.connections[0].closed, timeout=TIMEOUT)
        close_code = sim.connections[0].client_close_code
    assert result.returncode == 6 == livecall_status("TIME_LIMIT")
    assert close_code == 1000
    assert result.stderr == "", "a time limit is not an error: the exit status says it"
    assert "conversation_ended" not in [record["event"] for record in records(result.stdout)]


def test_idle_timeout_ends_a_watch_that_hears_nothing():
    with Simulator("hiya", "screening", join_timeout=10 * TIMEOUT) as sim:  # waits for a join, silent
        result = livecall(*sim.watch_args("--idle-timeout", "0.5"))
        call_ended = sim.call_ended
    assert result.returncode == 6
    assert "screening ended" in result.stdout and not call_ended


def test_a_call_that_ends_in_time_exits_0():
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*sim.watch_args("--max-duration", "600", "--idle-timeout", "600"))
    assert result.returncode == 0, result.stderr


def livecall_status(name: str) -> int:
    """A member of ``livecall.ExitStatus``, as the installed package has it."""
    import livecall

    return int(livecall.ExitStatus[name])


# --- help and usage --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "provider, default_url", [("hiya", "wss://voiceplatform.api.hiya.com"), ("phonic", "wss://api.phonic.ai")]
)
def test_help_shows_the_default_url(provider, default_url):
    result = livecall("watch", provider, "--help")
    assert result.returncode == 0
    assert f"(default: {default_url})" in " ".join(result.stdout.split())


def test_every_watch_option_has_help():
    for provider in ("hiya", "phonic"):
        usage = livecall("watch", provider, "--help").stdout
        assert not re.search(r"^  --[\w-]+( [A-Z]+)?\n(?!  {10})", usage, re.M), usage
    assert "the conversation to watch" in livecall("watch", "phonic", "--help").stdout


def test_the_user_id_can_come_from_the_environment():
    with Simulator("hiya", join_timeout=0) as sim:
        args = sim.watch_args("--format", "jsonl")
        user_id = args.pop(args.index("--user-id") + 1)
        args.remove("--user-id")
        missing = livecall(*args)
        result = livecall(*args, env=base_env(HIYA_USER_ID=user_id))
    assert missing.returncode == 2
    assert missing.stderr == "livecall: error: Hiya needs the user's id: --user-id or $HIYA_USER_ID\n"
    assert result.returncode == 0, result.stderr


# --- the jsonl contract with every plugin ------------------------------------------------------


def tutorial_module(name: str) -> str:
    """The module a docs page builds, from its code block captioned with the file name."""
    page = (Path(__file__).resolve().parent.parent / "docs" / "writing-plugins.rst").read_text()
    match = re.search(rf"\.\. code-block:: python\n +:caption: {name}\n\n((?: {{4}}.*\n|\n)+)", page)
    assert match, f"no code block captioned {name}"
    return textwrap.dedent(match.group(1))


class _Hooks(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_url():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hooks)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hooks"
    server.shutdown()
    thread.join()
    server.server_close()


def test_jsonl_stays_json_with_every_bundled_plugin_and_the_tutorials(plugin_env, tmp_path, webhook_url):
    pytest.importorskip("livecall_csv", reason="the bundled plugins are not installed")
    env = plugin_env("livecall_keywords", tutorial_module("livecall_keywords.py"))
    plugins = ["livecall_keywords", "livecall_csv", "livecall_logging", "livecall_webhook"]
    options = ["--keyword", "tuesday", "--csv", str(tmp_path / "calls.csv"), "--log-level", "INFO"]
    options += ["--webhook-url", webhook_url]
    loading = [word for plugin in plugins for word in ("-p", plugin)]
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*loading, *sim.watch_args("--format", "jsonl", *options), env=env)
        text = livecall(*loading, *sim.watch_args("--keyword", "tuesday"), env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert [json.loads(line)["event"] for line in lines][-1] == "conversation_ended", "every line is JSON"
    assert "** lines mentioning tuesday: 3" in result.stderr, "the tutorial's plugin wrote to stderr"
    assert (tmp_path / "calls.csv").read_text().count("\n") == 1 + 6, "the CSV plugin ran"
    assert text.stdout.splitlines()[-2:] == [
        "== phonic call conv_simulated-0001: the call ended",
        "** lines mentioning tuesday: 3",
    ], "with the transcript, after the printer's last line"
