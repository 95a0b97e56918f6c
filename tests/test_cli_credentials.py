"""``livecall watch``'s credentials: from flags, the environment, a command or a plugin, and never
shown, even at ``-vv``."""

import shlex
import sys
from pathlib import Path

import pytest
from cli_process import SECRETS, base_env, livecall, records

from livecall import ExitStatus
from livecall.testing import Simulator

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
