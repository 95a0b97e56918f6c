"""``livecall watch-many``: calls listed as JSON lines, watched at once, the worst status."""

import contextlib
import io
import json
import signal
import sys

import pytest
from cli_process import SECRETS, TIMEOUT, Running, base_env, livecall, records

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
