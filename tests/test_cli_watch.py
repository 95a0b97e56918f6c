"""``livecall watch``, run as a subprocess against the simulator on loopback: what it prints,
how it ends and with which status, signals and time limits."""

import json
import re
import signal
import socket
import subprocess
from datetime import datetime

import pytest
from cli_process import LIVECALL, RECORDER, TIMEOUT, base_env, closed_port, livecall, records

from livecall import ExitStatus
from livecall.testing import Simulator

KEYS = {"event", "provider", "call_id", "received_at"}
HIYA_EVENTS = (
    ["call_started"] + ["transcript"] * 5 + ["screening_ended"] + ["transcript"] * 3 + ["call_ended"]
)
CALLER = "+15551234567"


# --- jsonl ----------------------------------------------------------------------------


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


# --- text -----------------------------------------------------------------------------


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


def audio_urls(stdout):
    """Every item's ``audio_url`` in the snapshots of a jsonl output."""
    snapshots = [json.loads(line) for line in stdout.splitlines()]
    return [
        item["audio_url"]
        for record in snapshots
        if record["event"] == "conversation_updated"
        for item in record["conversation"]["items"]
    ]


def test_phonic_jsonl_blanks_audio_urls_even_at_vv_and_keeps_them_on_request():
    with Simulator("phonic", "sdk", audio_urls=True) as sim:
        blanked = livecall("-vv", *sim.watch_args("--format", "jsonl"))
    with Simulator("phonic", "sdk", audio_urls=True) as sim:
        kept = livecall(*sim.watch_args("--format", "jsonl", "--keep-audio-urls"))
    assert blanked.returncode == 0 and kept.returncode == 0, blanked.stderr + kept.stderr
    assert audio_urls(blanked.stdout) and set(audio_urls(blanked.stdout)) == {"***"}
    links = set(audio_urls(kept.stdout))
    assert len(links) == 4 and all(link.startswith("https://audio.phonic.example/") for link in links)
    assert not any(link in blanked.stdout + blanked.stderr for link in links)
    assert "DEBUG" in blanked.stderr  # -vv did log


def test_reconnects_and_bad_frames_are_marked_in_the_text():
    with Simulator("hiya", "malformed+drop", join_timeout=0, drop_mode=1012, lose=0) as sim:
        result = livecall(*sim.watch_args("--ping-interval", "5"))
    assert result.returncode == 0, result.stderr
    alerts = [line.split("!!", 1)[1].strip() for line in result.stdout.splitlines() if "  !!  " in line]
    assert any(alert.startswith("connection lost (closed with code 1012") for alert in alerts)
    assert any(alert.startswith("undecodable message skipped: invalid JSON") for alert in alerts)
    assert "unknown message type 'event:mystery'" in result.stdout


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


# --- exit statuses --------------------------------------------------------------------


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


# --- signals --------------------------------------------------------------------------


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


#: A plugin whose hook never returns: only a second signal can end the command.
STUCK = """
    import threading
    import livecall

    @livecall.hookimpl
    def livecall_transcript(call, transcript):
        print("stuck in a hook", flush=True)
        threading.Event().wait()
"""


@pytest.mark.parametrize(
    "signums, status",
    [((signal.SIGINT, signal.SIGTERM), 143), ((signal.SIGINT, signal.SIGINT), 130)],
    ids=["INT-TERM", "INT-INT"],
)
def test_a_second_signal_ends_a_command_stuck_in_a_hook_naming_the_plugin(
    running, plugin_env, signums, status
):
    env = plugin_env("stuck_plugin", STUCK)
    with Simulator("hiya", "screening", join_timeout=TIMEOUT) as sim:  # only a close of ours ends it
        process = running(["-p", "stuck_plugin", *sim.watch_args("--format", "jsonl")], env)
        process.line("stuck in a hook")
        process.process.send_signal(signums[0])
        assert sim.wait_for(lambda: sim.connections[0].client_close_code, TIMEOUT) == 1000, "the first seen"
        process.process.send_signal(signums[1])
        assert process.wait(timeout=TIMEOUT) == status
    [line] = process.stderr
    assert line.startswith(f"livecall: error: {signal.Signals(signums[1]).name} again: exiting at once")
    assert re.search(r"still running: call hiya:call_\w+, plugin stuck_plugin$", line)


def test_a_second_signal_ends_a_flush_that_does_not_end(running, plugin_env, tmp_path):
    log_path = tmp_path / "hooks.log"
    env = plugin_env("pausing_plugin", PAUSING, RECORDER_LOG=str(log_path), PAUSE_IN="unconfigure")
    with Simulator("phonic", "conversation") as sim:
        process = running(["-p", "pausing_plugin", *sim.watch_args()], env)
        process.line("paused in unconfigure")
        process.process.send_signal(signal.SIGTERM)
        process.process.send_signal(signal.SIGINT)
        assert process.wait(timeout=TIMEOUT) in (130, 143), "whichever of the two came second"
    assert "again: exiting at once; still running: plugins being set up or flushed" in "".join(process.stderr)


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


# --- cron: time limits ----------------------------------------------------------------


def test_max_duration_ends_the_watch_with_its_own_status():
    with Simulator("phonic", "conversation", pace=10 * TIMEOUT) as sim:  # a call that goes on and on
        result = livecall(*sim.watch_args("--max-duration", "0.5", "--format", "jsonl"))
        sim.wait_for(lambda: sim.connections[0].closed, timeout=TIMEOUT)
        close_code = sim.connections[0].client_close_code
    assert result.returncode == 6 == livecall_status("TIME_LIMIT")
    assert close_code == 1000
    assert (
        result.stderr == "livecall: warning: stopped watching at --max-duration 0.5, before the call ended\n"
    )
    assert "conversation_ended" not in [record["event"] for record in records(result.stdout)]


def test_idle_timeout_ends_a_watch_that_hears_nothing():
    with Simulator("hiya", "screening", join_timeout=10 * TIMEOUT) as sim:  # waits for a join, silent
        result = livecall(*sim.watch_args("--idle-timeout", "0.5"))
        call_ended = sim.call_ended
    assert result.returncode == 6
    assert (
        result.stderr == "livecall: warning: stopped watching at --idle-timeout 0.5, before the call ended\n"
    )
    assert "screening ended" in result.stdout and not call_ended


def test_a_call_that_ends_in_time_exits_0():
    with Simulator("phonic", "conversation") as sim:
        result = livecall(*sim.watch_args("--max-duration", "600", "--idle-timeout", "600"))
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_connect_timeout_bounds_each_connection_attempt(provider):
    with Simulator(provider) as sim, socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"  # accepts, never answers the handshake
        args = [*sim.watch_args("--connect-timeout", "0.2", "--max-retries", "0"), "--url", url]
        result = livecall(*args)
    assert result.returncode == 4, result.stderr
    assert "no handshake within the connect timeout" in result.stderr


def livecall_status(name: str) -> int:
    """A member of ``livecall.ExitStatus``, as the installed package has it."""
    import livecall

    return int(livecall.ExitStatus[name])


# --- help and usage -------------------------------------------------------------------


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


@pytest.mark.parametrize(
    "option, value",
    [
        ("--ping-interval", "nan"),
        ("--ping-timeout", "inf"),
        ("--max-duration", "inf"),  # its thread's poll() overflowed
        ("--idle-timeout", "1e300"),
        ("--connect-timeout", "0"),
        ("--max-retries", "\u00b2"),
        ("--max-retries", "-1"),
    ],
)
def test_a_number_option_must_be_finite_and_in_range(option, value):
    result = livecall(
        "watch", "phonic", "--conversation-id", "c", "--api-key", "key-0123456789", option, value
    )
    assert result.returncode == 2, result.stderr
    assert f"argument {option}: the value must be a" in result.stderr
    assert result.stderr.count("\n") == 1
