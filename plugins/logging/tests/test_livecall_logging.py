"""livecall-logging: records caught by a real handler and a real file, from simulated calls."""

import json
import logging
import os
import re
import signal
import subprocess
import sys

import pytest

import livecall
import livecall_logging
from livecall.plugins import DISABLE_AUTOLOAD_ENV
from livecall.testing import Exploding, Simulator, configure, wait_until
from livecall_logging import EventLogger

SECRETS = dict(token="bearer-SECRET-1234", conversation_token="conv-token-SECRET-5678")


class Collector(logging.Handler):
    """What an application's own handler would receive."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)

    def events(self):
        return [r for r in self.records if r.name.startswith("livecall.events.")]

    def of(self, event):
        return [r for r in self.events() if r.event == event]


@pytest.fixture
def app_handler():
    """A handler on the root logger, as a legacy application sets up its logging."""
    handler = Collector()
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(level)


def watch(sim, *plugins, **options):
    cls = livecall.HiyaClient if sim.provider == "hiya" else livecall.PhonicClient
    client = cls(**sim.client_kwargs(), plugins=plugins, backoff=livecall.Backoff(0.01, 0.05), **options)
    events = []
    client.on(livecall.Event, lambda call, event: events.append(event))
    try:
        client.run()
    except livecall.LivecallError:
        pass
    return client.call, events


def test_every_event_reaches_the_applications_handler(app_handler):
    with Simulator("hiya", join_timeout=0.1) as sim:
        call, events = watch(sim, EventLogger())
    records = app_handler.events()
    assert [r.event for r in records] == ["call_start"] + [e.kind for e in events] + ["call_end"]
    assert all(r.call_id == call.id and r.provider == "hiya" for r in records)
    assert all(r.name == f"livecall.events.{r.event}" for r in records)
    transcripts = app_handler.of("transcript")
    assert [r.getMessage() for r in transcripts] == [
        f"{e.role}: {e.text}" for e in events if isinstance(e, livecall.Transcript)
    ]
    assert {r.levelno for r in transcripts} == {logging.INFO}


def test_reconnects_and_undecodable_frames_are_warnings(app_handler):
    with Simulator("phonic", "malformed+drop") as sim:
        watch(sim, EventLogger())
    reconnects = app_handler.of("reconnecting")
    decode_errors = app_handler.of("decode_error")
    assert reconnects and decode_errors
    assert {r.levelno for r in reconnects + decode_errors} == {logging.WARNING}
    assert "reconnecting in" in reconnects[0].getMessage()


def test_server_errors_and_failed_watches_are_errors(app_handler):
    with Simulator("hiya", "auth-close", **SECRETS) as sim:
        watch(sim, EventLogger(), max_retries=0)
    server_errors = app_handler.of("error")
    failures = app_handler.of("failure")
    assert server_errors and server_errors[0].levelno == logging.ERROR
    assert "invalid or expired credentials" in server_errors[0].getMessage()
    assert failures and failures[0].levelno == logging.ERROR
    assert "AuthenticationError" in failures[0].getMessage()


def test_a_raising_plugin_is_logged_as_an_error_and_costs_nothing(app_handler):
    with Simulator("phonic") as sim:
        call, events = watch(sim, Exploding("livecall_event"), EventLogger())
    failures = app_handler.of("failure")
    assert len(failures) == len(events)
    assert {r.levelno for r in failures} == {logging.ERROR}
    assert "boom" in failures[0].getMessage() and "livecall_event" in failures[0].getMessage()
    logged = [r.event for r in app_handler.events() if r.event not in ("failure", "call_start", "call_end")]
    assert logged == [e.kind for e in events]


def test_tool_calls_read_as_their_name_and_outcome_never_their_arguments(app_handler):
    with Simulator("phonic", "sdk") as sim:
        watch(sim, EventLogger())
    tool_calls = app_handler.of("tool_call")
    assert [r.getMessage() for r in tool_calls] == [
        "tool call reschedule_appointment: pending",
        "tool call reschedule_appointment (revised): status 200",
    ]
    assert {r.levelno for r in tool_calls} == {logging.INFO}


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(name="book", timed_out=True, status_code=504.0), "tool call book: timed out"),
        (dict(name="book", error="down\nagain", status_code=500), "tool call book: failed: down\\nagain"),
        (dict(name=None, status_code=201.5), "tool call tc_9: status 201.5"),
    ],
)
def test_a_tool_call_line_is_one_escaped_line_without_arguments(
    tmp_path, events_logger_level, fields, message
):
    path = tmp_path / "events.log"
    event_logger = EventLogger(livecall_logging._handler(str(path), None, 5), "INFO")
    call = livecall.Call(id="conv_tools", provider="phonic")
    secret = "tool-SECRET-4242"
    tool_call = livecall.ToolCall(
        tool_call_id="tc_9", item_idx=2, arguments={"api_key": secret}, result=secret, **fields
    )
    event_logger.livecall_event(call=call, event=tool_call)
    event_logger.close()
    [line] = path.read_text(encoding="utf-8").splitlines()
    assert line.endswith(f"phonic conv_tools tool_call: {message}")
    assert "SECRET" not in line


def test_no_secret_reaches_a_record(app_handler):
    with Simulator("hiya", "malformed+drop", join_timeout=0.1, **SECRETS) as sim:
        watch(sim, EventLogger())
    formatter = logging.Formatter(livecall_logging.FORMAT)
    assert app_handler.events()
    for record in app_handler.records:
        text = formatter.format(record) if hasattr(record, "call_id") else logging.Formatter().format(record)
        text += repr(vars(record))
        for secret in SECRETS.values():
            assert secret not in text


@pytest.fixture
def events_logger_level():
    """The ``livecall.events`` level an application had set, put back afterwards."""
    logger = logging.getLogger(livecall_logging.LOGGER_NAME)
    logger.setLevel(logging.WARNING)
    yield logger
    logger.setLevel(logging.NOTSET)


def test_log_file_appends_and_keeps_the_records_off_stderr(tmp_path, app_handler, events_logger_level):
    path = tmp_path / "events.log"
    path.write_text("a line from yesterday\n")
    config = configure(livecall_logging, "--log-file", str(path), "--log-level", "info")
    pm = config.plugin_manager
    with Simulator("phonic") as sim:
        call, events = watch(sim, plugin_manager=pm)
    config.close()
    assert events_logger_level.level == logging.WARNING, "the level is given back"
    assert events_logger_level.propagate and not events_logger_level.handlers
    lines = path.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "a line from yesterday"
    assert len(lines) == 1 + len(events) + 2
    assert all(f" INFO phonic {call.id} " in line for line in lines[1:])
    assert lines[-2].endswith("conversation_ended: conversation ended")
    assert app_handler.events() == [], "the command's stderr handler on the root logger is spared"


def test_rotation_keeps_what_the_file_held(tmp_path, events_logger_level):
    path = tmp_path / "events.log"
    path.write_text("kept\n" * 100)
    config = configure(
        livecall_logging, "--log-file", str(path), "--log-max-bytes", "600", "--log-backups", "50"
    )
    pm = config.plugin_manager
    with Simulator("phonic") as sim:
        call, events = watch(sim, plugin_manager=pm)
    config.close()
    files = sorted(tmp_path.iterdir())
    assert len(files) > 2 and all(f.stat().st_size <= 600 for f in files)
    text = "".join(f.read_text(encoding="utf-8") for f in files)
    assert text.count("kept\n") == 100
    assert text.count(f" {call.id} ") == len(events) + 2


def test_without_options_it_does_nothing(app_handler):
    config = configure(livecall_logging)
    pm = config.plugin_manager
    with Simulator("phonic") as sim:
        watch(sim, plugin_manager=pm)
    config.close()
    assert pm.hook.livecall_event.get_hookimpls() == []
    assert app_handler.events() == []


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--log-file", "{tmp}/missing/events.log"], "cannot open log file"),
        (["--log-max-bytes", "100"], "needs --log-file"),
        (["--log-file", "{tmp}/events.log", "--log-max-bytes", "0"], "positive size"),
    ],
)
def test_bad_options_are_clear_errors(tmp_path, argv, message):
    with pytest.raises(livecall.ConfigurationError, match=message):
        configure(livecall_logging, *[arg.format(tmp=tmp_path) for arg in argv])


def watch_command(sim, *options):
    """``livecall watch`` of ``sim``, as a user runs it: ``--format jsonl``, then ``options``."""
    return [sys.executable, "-m", "livecall", *sim.watch_args("--format", "jsonl", *options)]


def user_env():
    """The environment without the switch that keeps installed plugins (this one) from loading."""
    return {k: v for k, v in os.environ.items() if k != DISABLE_AUTOLOAD_ENV}


def test_livecall_watch_logs_to_the_file_and_not_to_stderr(tmp_path, phonic_simulator):
    path = tmp_path / "events.log"
    credentials = phonic_simulator.client_kwargs()
    command = watch_command(phonic_simulator, "--log-file", str(path), "--log-level", "debug")
    done = subprocess.run(command, cwd=tmp_path, env=user_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    kinds = [json.loads(line)["event"] for line in done.stdout.splitlines()]
    lines = path.read_text(encoding="utf-8").splitlines()
    assert [line.split(": ", 1)[0].rsplit(" ", 1)[1] for line in lines] == ["call_start", *kinds, "call_end"]
    assert credentials["api_key"] not in path.read_text(encoding="utf-8")
    assert [p.name for p in tmp_path.iterdir()] == ["events.log"]


EARLIER = "an earlier run's last record\n"
RECORD = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ hiya call_\w+ \w+: .*")


def logged_transcripts(path):
    """The texts of the transcript records after ``EARLIER``; every record must be whole."""
    text = path.read_text(encoding="utf-8")
    assert text.startswith(EARLIER) and text.endswith("\n"), "appended to, and the last record is whole"
    lines = text[len(EARLIER) :].splitlines()
    assert [line for line in lines if not RECORD.fullmatch(line)] == []
    return [line.rsplit(": ", 1)[1] for line in lines if " transcript: " in line]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX")
def test_sigkill_mid_call_leaves_whole_records_and_the_next_run_appends(tmp_path, events_logger_level):
    """No handler runs on SIGKILL: each record must be written whole and flushed on its own."""
    path = tmp_path / "events.log"
    path.write_text(EARLIER, encoding="utf-8")
    with Simulator("hiya", "flood", flood_count=100_000) as sim:
        child = subprocess.Popen(
            watch_command(sim, "--log-file", str(path)), env=user_env(), stdout=subprocess.DEVNULL
        )
        try:  # files notify nobody: polled
            wait_until(lambda: child.poll() is not None or path.read_bytes().count(b"\n") > 500)
            assert child.poll() is None, "the watch ended before writing 500 records"
        finally:
            child.kill()
            child.wait(10)
        assert not sim.call_ended, "killed mid-call"
    said = logged_transcripts(path)
    assert said == [f"flood message {n}" for n in range(1, len(said) + 1)], "in order, none missing"

    config = configure(livecall_logging, "--log-file", str(path))
    pm = config.plugin_manager
    with Simulator("hiya", "flood", flood_count=10) as sim:
        watch(sim, plugin_manager=pm)
    config.close()
    assert logged_transcripts(path) == said + [f"flood message {n}" for n in range(1, 11)]


def test_a_new_log_file_and_every_rotated_one_are_private_and_an_old_one_keeps_its_mode(
    tmp_path, events_logger_level
):
    """Log files hold transcripts: personal data, readable by their owner only."""
    kept = tmp_path / "kept.log"
    kept.write_text("")
    kept.chmod(0o640)
    for path, extra in ((tmp_path / "rotating.log", ["--log-max-bytes", "600"]), (kept, [])):
        config = configure(livecall_logging, "--log-file", str(path), *extra)
        pm = config.plugin_manager
        with Simulator("phonic") as sim:
            watch(sim, plugin_manager=pm)
        config.close()
    modes = {path.name: path.stat().st_mode & 0o777 for path in tmp_path.iterdir()}
    assert modes.pop("kept.log") == 0o640
    assert len(modes) > 1 and set(modes.values()) == {0o600}, modes


def test_a_server_echoing_a_token_reaches_no_record_of_any_handler(app_handler):
    """The application's own handlers get the records too: their arguments are redacted."""
    token = SECRETS["token"]
    call = livecall.Call(provider="hiya", id="call_1")
    logger = EventLogger()
    logger.livecall_event(call, livecall.ServerError(message=f"bad token {token}\nERROR forged"))
    logger.livecall_event(call, livecall.Transcript(text=f"it is {token}", role="other"))
    messages = [record.getMessage() for record in app_handler.events()]
    assert messages == ["server error: bad token ***\nERROR forged", "other: it is ***"]


class LeakingAudioUrls:
    """A plugin that fails with each turn's presigned audio link in its message."""

    @livecall.hookimpl
    def livecall_event(self, call, event):
        if isinstance(event, livecall.ConversationUpdated) and event.conversation.items:
            raise ValueError(f"cannot fetch {event.conversation.items[-1].extra['audio_url']}")


def test_no_audio_url_reaches_a_record(app_handler):
    with Simulator("phonic", "sdk", audio_urls=True) as sim:
        _, events = watch(sim, LeakingAudioUrls(), EventLogger())
    links = {
        item.extra["audio_url"]
        for event in events
        if isinstance(event, livecall.ConversationUpdated)
        for item in event.conversation.items
    }
    failures = app_handler.of("failure")
    assert len(links) == 4 and failures and all("cannot fetch ***" in r.getMessage() for r in failures)
    formatter = logging.Formatter(livecall_logging.FORMAT)
    for record in app_handler.events():
        assert not any(link in formatter.format(record) + repr(vars(record)) for link in links)
