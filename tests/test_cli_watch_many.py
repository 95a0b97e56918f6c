"""``livecall watch-many``: calls listed as JSON lines, watched at once, the worst status."""

import contextlib
import io
import json
import re
import signal
import socket
import subprocess
import sys

import pytest
from cli_process import LIVECALL, SECRETS, TIMEOUT, Running, base_env, livecall, records

from livecall import ConfigurationError
from livecall.cli._many_lines import LineRules, read_lines
from livecall.testing import Simulator


def _line(sim, **extra):
    return json.dumps({"provider": sim.provider, **sim.client_kwargs(), **extra})


def _allow(*sims):
    """The options that let lines name these simulators' base URLs."""
    return [arg for sim in sims for arg in ("--allow-url", sim.url)]


def test_every_listed_call_is_watched_to_its_end_in_one_process():
    with contextlib.ExitStack() as stack:
        sims = [
            stack.enter_context(Simulator("phonic", "conversation", conversation_id=f"conv_many-{n}"))
            for n in range(3)
        ]
        hiya = stack.enter_context(Simulator("hiya", "screening", join_timeout=5))
        lines = [_line(sim) for sim in sims] + [_line(hiya, join=True), ""]
        result = livecall("watch-many", "--format", "jsonl", *_allow(*sims, hiya), input="\n".join(lines))
    assert result.returncode == 0, result.stderr
    events = records(result.stdout)
    by_call = {}
    for event in events:
        by_call.setdefault(event["call_id"], []).append(event)
    phonic = {f"conv_many-{n}" for n in range(3)}
    assert phonic < set(by_call) and len(by_call) == 4
    for call_id in phonic:
        said = [e["text"] for e in by_call[call_id] if e["event"] == "transcript"]
        assert len(said) == 6 and by_call[call_id][-1]["event"] == "conversation_ended"
    (hiya_id,) = set(by_call) - phonic
    kinds = [e["event"] for e in by_call[hiya_id]]
    assert "ack" in kinds, "the line asked to join"
    assert kinds[-1] == "call_ended"


def test_the_exit_status_is_the_worst_of_the_calls(tmp_path):
    with Simulator("phonic", "conversation") as good, Simulator("phonic", "conversation") as refused:
        listing = tmp_path / "calls.jsonl"
        listing.write_text(_line(good) + "\n" + _line(refused, api_key="wrong-key-value") + "\n")
        result = livecall("watch-many", "--format", "jsonl", *_allow(good, refused), str(listing))
    assert result.returncode == 3, result.stderr
    assert "wrong-key-value" not in result.stderr + result.stdout
    assert "refused" in result.stderr
    assert records(result.stdout)[-1]["event"] == "conversation_ended", "the good call was watched to its end"


def test_a_bad_line_fails_the_run_before_any_call_is_watched():
    with Simulator("phonic", "conversation") as sim:
        lines = [_line(sim), json.dumps({"provider": "phonic", "bogus_option": 1})]
        result = livecall(
            "watch-many", *_allow(sim), input="\n".join(lines), env=base_env(PHONIC_API_KEY="k")
        )
        accepted = sim.accepted
    assert result.returncode == 2
    assert "line 2" in result.stderr
    assert accepted == 0


def test_a_signal_closes_every_watch_with_1000_and_exits_with_its_status(tmp_path):
    with contextlib.ExitStack() as stack:
        sims = [
            stack.enter_context(Simulator("hiya", "screening", join_timeout=TIMEOUT, user_id=f"user-{n}"))
            for n in range(2)
        ]  # each waits for a join that never comes
        listing = tmp_path / "calls.jsonl"
        listing.write_text("".join(_line(sim) + "\n" for sim in sims))
        process = Running(["watch-many", "--format", "jsonl", *_allow(*sims), str(listing)])
        try:
            for _ in sims:
                process.line('"screening_ended"')
            process.process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=TIMEOUT) == 143
        finally:
            process.stop()
        for sim in sims:
            assert sim.wait_for(lambda sim=sim: sim.connections[0].client_close_code, TIMEOUT) == 1000
    assert process.stderr == []


# --- lines are data: no programs, no credentials to a host the line chooses ------------


def _hiya_line_with_command(sim, command):
    fields = {k: v for k, v in sim.client_kwargs().items() if k != "token"}
    return json.dumps({"provider": "hiya", **fields, "token_command": command})


def test_a_line_s_command_runs_only_with_allow_line_commands(tmp_path):
    marker = tmp_path / "ran"
    script = f"import pathlib; pathlib.Path({str(marker)!r}).touch(); print({SECRETS['hiya']['token']!r})"
    command = f"{sys.executable} -c {json.dumps(script)}"
    with Simulator("hiya", "screening", **SECRETS["hiya"]) as sim:
        line = _hiya_line_with_command(sim, command)
        refused = livecall("watch-many", *_allow(sim), input=line)
        assert refused.returncode == 2, refused.stderr
        assert "line 1: token_command" in refused.stderr and "--allow-line-commands" in refused.stderr
        assert not marker.exists() and not sim.connections
        allowed = livecall("watch-many", "--allow-line-commands", *_allow(sim), input=line)
    assert allowed.returncode == 0, allowed.stderr
    assert marker.exists()
    assert SECRETS["hiya"]["token"] not in allowed.stdout + allowed.stderr


def test_the_environment_s_token_never_goes_to_a_url_no_option_allowed():
    with Simulator("hiya", "screening", **SECRETS["hiya"]) as sim:
        fields = {k: v for k, v in sim.client_kwargs().items() if k != "token"}
        env = base_env(HIYA_TOKEN=SECRETS["hiya"]["token"])
        result = livecall("watch-many", input=json.dumps({"provider": "hiya", **fields}), env=env)
        connections = sim.connections
    assert result.returncode == 2, result.stderr
    assert "line 1: url must have the scheme, host and port" in result.stderr
    assert not connections


def _read(text, **rules):
    return read_lines(io.BytesIO(text.encode()), LineRules(**rules))


@pytest.mark.parametrize(
    "url, allowed, ok",
    [
        ("wss://api.phonic.ai", [], True),
        ("wss://API.phonic.ai:443/", [], True),
        ("ws://127.0.0.1:8080", ["ws://127.0.0.1:8080/prefix"], True),
        ("ws://api.phonic.ai", [], False),  # a downgrade of the default
        ("wss://api.phonic.ai:8443", [], False),
        ("wss://evil.example", [], False),
        ("wss://voiceplatform.api.hiya.com", [], False),  # Hiya's host is not Phonic's
        ("ws://127.0.0.1:8080", ["wss://127.0.0.1:8080"], False),
        ("ws://127.0.0.1:8081", ["ws://127.0.0.1:8080"], False),
    ],
)
def test_a_line_s_url_must_have_an_allowed_origin(url, allowed, ok):
    text = json.dumps({"provider": "phonic", "conversation_id": "c", "url": url})
    if ok:
        [line] = _read(text, allowed_urls=allowed)
        assert line.fields["url"] == url
    else:
        with pytest.raises(ConfigurationError, match="line 1: url must have the scheme, host and port"):
            _read(text, allowed_urls=allowed)


def test_a_misspelt_key_is_named_with_its_likely_meaning_and_its_value_never_shown():
    line = json.dumps({"provider": "phonic", "conversation_id": "c", "api_kye": "key-SECRET-typo-7a1c"})
    result = livecall("watch-many", input=line)
    assert result.returncode == 2
    assert "line 1: a phonic request takes no api_kye (did you mean api_key?)" in result.stderr
    assert "key-SECRET-typo-7a1c" not in result.stderr + result.stdout


def test_a_value_that_looks_like_an_option_is_a_value():
    with Simulator("phonic", "conversation", conversation_id="--help") as sim:
        result = livecall("watch-many", "--format", "jsonl", *_allow(sim), input=_line(sim))
    assert result.returncode == 0, result.stderr
    assert {event["call_id"] for event in records(result.stdout)} == {"--help"}


# --- bounded lines, every line checked before any client is built -----------------------


class Endless(io.RawIOBase):
    """A stream of ``x`` without end: one line that never finishes, counting what was read of it."""

    def __init__(self):
        self.given = 0

    def readable(self):
        return True

    def readinto(self, buffer):
        buffer[:] = b"x" * len(buffer)
        self.given += len(buffer)
        return len(buffer)


def test_a_line_without_end_is_refused_having_read_only_its_bound():
    source = Endless()
    with pytest.raises(
        ConfigurationError, match=r"line 1 is longer than 1024 bytes \(see --max-line-bytes\)"
    ):
        read_lines(io.BufferedReader(source, buffer_size=4096), LineRules(max_line_bytes=1024))
    assert source.given <= 1024 + 2 * 4096


def test_max_line_bytes_is_an_option_and_a_line_of_exactly_that_many_is_read():
    fields = {"provider": "phonic", "conversation_id": "c"}
    text = json.dumps(fields)
    [line] = _read(text + "\n", max_line_bytes=len(text))
    assert line.fields == {"conversation_id": "c"}
    result = livecall("watch-many", "--max-line-bytes", "10", input=text)
    assert result.returncode == 2 and "line 1 is longer than 10 bytes" in result.stderr


@pytest.mark.parametrize("text", ["[" * 100_000, "\xff{}", "1" * 10_000, "[]"])
def test_a_line_that_is_no_json_object_is_refused_by_number(text):
    with pytest.raises(ConfigurationError, match="line 2: not "):
        _read("\n" + text, max_line_bytes=1_000_000)


def test_every_line_is_checked_before_any_client_is_built():
    """Line 1 could only fail once its client is built (no API key anywhere); line 2's typo is
    found first, as a typo on the last of many lines is, without building the clients before it."""
    lines = [json.dumps({"provider": "phonic", "conversation_id": "c"})]
    lines += [
        json.dumps({"provider": "phonic", "conversation_id": f"c{n}", "api_key": "k" * 8})
        for n in range(20_000)
    ]
    lines.append(json.dumps({"provider": "phonic", "conversation_idd": "c"}))
    result = livecall("watch-many", input="\n".join(lines))
    assert result.returncode == 2
    assert "line 20002: a phonic request takes no conversation_idd" in result.stderr


# --- watch's promises, kept for every call ------------------------------------------------


def test_a_line_s_max_duration_stops_its_call_alone_with_6_and_says_so():
    with (
        Simulator("phonic", "conversation", pace=10 * TIMEOUT, conversation_id="conv_long") as long,
        Simulator("phonic", "conversation", conversation_id="conv_short") as short,
    ):
        lines = [_line(long, max_duration=0.5), _line(short)]
        result = livecall("watch-many", "--format", "jsonl", *_allow(long, short), input="\n".join(lines))
        long.wait_for(lambda: long.connections[0].closed, timeout=TIMEOUT)
        close_code = long.connections[0].client_close_code
    assert result.returncode == 6, result.stderr
    assert result.stderr == (
        "livecall: warning: call conv_long: stopped watching at max_duration 0.5 of line 1, "
        "before the call ended\n"
    )
    assert close_code == 1000
    ended = [event["call_id"] for event in records(result.stdout) if event["event"] == "conversation_ended"]
    assert ended == ["conv_short"], "the other call was watched to its end"


@pytest.mark.parametrize(
    "option, line_field",
    [("--max-duration", {}), ("--idle-timeout", {}), (None, {"idle_timeout": "0.5"})],
    ids=["max-duration", "idle-timeout", "line-idle_timeout"],
)
def test_time_limits_of_the_command_or_a_line_end_a_silent_call_with_6(option, line_field):
    with Simulator("hiya", "screening", join_timeout=10 * TIMEOUT) as sim:  # waits for a join, silent
        args = [option, "0.5"] if option else []
        result = livecall("watch-many", *args, *_allow(sim), input=_line(sim, **line_field))
        call_ended = sim.call_ended
    assert result.returncode == 6, result.stderr
    named = f"{option} 0.5" if option else "idle_timeout 0.5 of line 1"
    assert re.fullmatch(
        rf"livecall: warning: call call_\w+: stopped watching at {named}, before the call ended\n",
        result.stderr,
    )
    assert not call_ended


@pytest.mark.parametrize(
    "field, value", [("max_duration", -1), ("idle_timeout", "nan"), ("max_duration", True)]
)
def test_a_line_s_time_limit_must_be_a_number_of_seconds(field, value):
    text = json.dumps({"provider": "phonic", "conversation_id": "c", field: value})
    with pytest.raises(ConfigurationError, match=f"line 1: {field} must be a number of seconds"):
        _read(text)


def test_a_closed_pipe_ends_every_watch_at_once_with_0():
    """``livecall watch-many ... | head -2``: the calls would go on for minutes, waiting for a join."""
    with contextlib.ExitStack() as stack:
        sims = [
            stack.enter_context(
                Simulator("hiya", "screening", join_timeout=10 * TIMEOUT, user_id=f"user-{n}")
            )
            for n in range(2)
        ]
        process = subprocess.Popen(
            [*LIVECALL, "watch-many", "--format", "jsonl", *_allow(*sims)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=base_env(),
        )
        try:
            process.stdin.write("".join(_line(sim) + "\n" for sim in sims))
            process.stdin.close()
            for _ in range(2):
                assert json.loads(process.stdout.readline())["provider"] == "hiya"
            process.stdout.close()  # like `| head -2`
            stderr = process.stderr.read()
            process.wait(timeout=TIMEOUT)
        finally:
            process.kill()
        for sim in sims:
            assert sim.wait_for(lambda sim=sim: sim.connections[0].client_close_code, TIMEOUT) == 1000
            assert not sim.call_ended
    assert process.returncode == 0
    assert stderr == ""


def test_text_lines_say_which_call_they_belong_to_and_a_join_reads_as_in_watch():
    with contextlib.ExitStack() as stack:
        sims = [
            stack.enter_context(Simulator("phonic", "conversation", conversation_id=f"conv_{n}"))
            for n in range(2)
        ]
        hiya = stack.enter_context(Simulator("hiya", "screening"))
        lines = [_line(sim) for sim in sims] + [_line(hiya, join=True)]
        result = livecall("watch-many", *_allow(*sims, hiya), input="\n".join(lines))
    assert result.returncode == 0, result.stderr
    by_call = {}
    for text in result.stdout.splitlines():
        match = re.fullmatch(r"\[(\w+)\] (.*)", text)
        assert match, f"a line without its call: {text!r}"
        by_call.setdefault(match[1], []).append(match[2])
    (hiya_id,) = set(by_call) - {"conv_0", "conv_1"}
    for call_id, said in by_call.items():
        assert said[0].startswith(f"== {'hiya' if call_id == hiya_id else 'phonic'} call {call_id}")
        assert said[-1].endswith(": the call ended")
    assert sum("caller +15551234567" in text for text in by_call["conv_0"]) == 1
    assert any(text.endswith("--         joined the call") for text in by_call[hiya_id])
    assert "acknowledged" not in result.stdout


def test_connect_timeout_bounds_each_connection_attempt():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers the handshake
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}"
        line = json.dumps({"provider": "phonic", "conversation_id": "c", "url": url, "max_retries": 0})
        result = livecall(
            "watch-many",
            "--connect-timeout",
            "0.2",
            "--allow-url",
            url,
            input=line,
            env=base_env(PHONIC_API_KEY="k" * 12),
        )
    assert result.returncode == 4, result.stderr
    assert "no handshake within the connect timeout" in result.stderr
