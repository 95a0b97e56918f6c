"""What every ``livecall`` command shares: usage errors, stdout that cannot be written,
``python -m livecall``, and the global options ``-p``, ``-v``, ``-vv`` and ``--quiet`` anywhere."""

import importlib.util
import json
import os
import re
import subprocess
import sys

import pytest
from cli_process import LIVECALL, RECORDER, SECRETS, TIMEOUT, base_env, closed_port, livecall

from livecall.cli import main
from livecall.testing import Simulator


def test_python_dash_m_is_the_same_command():
    result = subprocess.run(
        [sys.executable, "-m", "livecall", "--version"], capture_output=True, text=True, timeout=TIMEOUT
    )
    assert result.returncode == 0
    assert re.fullmatch(r"livecall \d+\.\d+\.\d+\S*\n", result.stdout)


# --- usage errors ---------------------------------------------------------------------


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


# --- stdout that cannot be written ----------------------------------------------------


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


# --- global options anywhere, -v, -vv and --quiet -------------------------------------


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


# --- the command line's rough edges -----------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["wach"], "invalid choice: 'wach' (choose from "),
        (["watch", "phonc"], "did you mean 'phonic'? (see: livecall watch --help)"),
        (
            [*PHONIC_ARGS, "--max-duraton", "2"],
            "unrecognized arguments: --max-duraton 2 (did you mean --max-duration?)",
        ),
        (
            ["plugins", "--jsno"],
            "unrecognized arguments: --jsno (did you mean --json?) (see: livecall plugins --help)",
        ),
        ([*PHONIC_ARGS, "--bogus"], "unrecognized arguments: --bogus (see: livecall watch phonic --help)"),
    ],
)
def test_a_mistyped_command_or_option_names_what_it_meant_and_the_command_s_help(args, message):
    result = livecall(*args)
    assert result.returncode == 2
    assert message in result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    if args == ["wach"]:
        assert result.stderr.endswith("; did you mean 'watch'? (see: livecall --help)\n")


def test_dash_capital_v_is_version():
    assert livecall("-V").stdout == livecall("--version").stdout != ""


def test_short_credentials_make_one_warning_after_the_usage_errors():
    for mistake, error in [
        (["--usre-id", "x"], "unrecognized arguments: --usre-id x"),
        ([], "Hiya needs the user's id"),  # found once the client is built
    ]:
        refused = livecall("watch", "hiya", "--token", "t", "--conversation-token", "u", *mistake)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"livecall: error: {error}")
        assert refused.stderr.count("\n") == 1, "the usage error is all there is to read"
    url = f"ws://127.0.0.1:{closed_port()}"
    args = ["--token", "t", "--conversation-token", "u", "--user-id", "x", "--url", url, "--max-retries", "0"]
    result = livecall("watch", "hiya", *args)
    assert result.returncode == 4
    warning, error = result.stderr.splitlines()
    assert warning == (
        "livecall: warning: a credential of 1 character is too short to blank from output without "
        "blanking ordinary words: it is not redacted (secrets of 8 characters or more are); "
        "so is 1 more credential"
    )
    assert error.startswith("livecall: error: gave up after 0 failed reconnect attempts")


def test_main_returns_the_exit_status_as_the_console_script_and_python_dash_m_exit_with_it(capsys):
    assert main(["plugins", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)
    assert main(["plugins", "--bogus"]) == 2
    assert main(["--version"]) == 0
    for command in (LIVECALL, [sys.executable, "-m", "livecall"]):
        result = subprocess.run(
            [*command, "plugins", "--bogus"], capture_output=True, env=base_env(), timeout=TIMEOUT
        )
        assert result.returncode == 2


@pytest.mark.parametrize("args", [["plugins"], ["plugins", "--json"], ["--help"], ["simulate", "--list"]])
def test_a_reader_gone_ends_every_command_quietly_with_0(args):
    """``livecall plugins | head -3``: the reader has gone before anything is written."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [*LIVECALL, *args],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(),
            timeout=TIMEOUT,
        )
    finally:
        os.close(write_end)
    assert (result.returncode, result.stderr) == (0, "")


def test_shell_completion_offers_the_commands_and_options(tmp_path):
    if importlib.util.find_spec("argcomplete") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("argcomplete is not installed: the test extra installs it")
        pytest.skip("argcomplete is not installed (pip install 'livecall[completion]')")
    offered = tmp_path / "offered"

    def complete(line):
        env = base_env(_ARGCOMPLETE="1", COMP_LINE=line, COMP_POINT=str(len(line)))
        env["_ARGCOMPLETE_STDOUT_FILENAME"] = str(offered)
        result = subprocess.run(LIVECALL, capture_output=True, text=True, env=env, timeout=TIMEOUT)
        assert result.returncode == 0, result.stderr
        return {offer.strip() for offer in offered.read_text().split("\013")}

    assert complete("livecall wa") == {"watch", "watch-many"}
    assert {"demo", "simulate", "plugins"} <= complete("livecall ")
    assert complete("livecall watch phonic --connect-t") == {"--connect-timeout"}
