"""``livecall watch-many``: calls listed as JSON lines, watched at once, the worst status."""

import contextlib
import json
import signal

from cli_process import TIMEOUT, Running, base_env, livecall, records

from livecall.testing import Simulator


def _line(sim, **extra):
    return json.dumps({"provider": sim.provider, **sim.client_kwargs(), **extra})


def test_every_listed_call_is_watched_to_its_end_in_one_process():
    with contextlib.ExitStack() as stack:
        sims = [
            stack.enter_context(Simulator("phonic", "conversation", conversation_id=f"conv_many-{n}"))
            for n in range(3)
        ]
        hiya = stack.enter_context(Simulator("hiya", "screening", join_timeout=5))
        lines = [_line(sim) for sim in sims] + [_line(hiya, join=True), ""]
        result = livecall("watch-many", "--format", "jsonl", input="\n".join(lines))
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
        result = livecall("watch-many", "--format", "jsonl", str(listing))
    assert result.returncode == 3, result.stderr
    assert "wrong-key-value" not in result.stderr + result.stdout
    assert "refused" in result.stderr
    assert records(result.stdout)[-1]["event"] == "conversation_ended", "the good call was watched to its end"


def test_a_bad_line_fails_the_run_before_any_call_is_watched():
    with Simulator("phonic", "conversation") as sim:
        lines = [_line(sim), json.dumps({"provider": "phonic", "bogus_option": 1})]
        result = livecall("watch-many", input="\n".join(lines), env=base_env(PHONIC_API_KEY="k"))
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
        process = Running(["watch-many", "--format", "jsonl", str(listing)])
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
