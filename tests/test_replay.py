"""``livecall replay`` and ``livecall.testing.Replay``: recordings served again, faults on demand.

Recordings are written here from the simulator's scripts (a realistic call
in the recording format), or, for the end-to-end comparison, by ``livecall
record`` watching the simulator.  Clients are livecall's own, in process or
as ``livecall`` subprocesses.
"""

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import livecall
from livecall.testing import Recorder, RecordingError, Replay, read_recording
from livecall.testing._options import ScenarioOptions
from livecall.testing._scenarios import build, provider_spec
from livecall.testing._steps import AwaitJoin, Close, Send, encode, render

ROOT = Path(__file__).resolve().parent.parent
FAST = dict(backoff=livecall.Backoff(0.01, 0.05), ping_interval=0.5, ping_timeout=0.5, close_timeout=1.0)
TIMEOUT = 60
RECORDED_JOIN_ID = "recorded-join-id"


def header(provider: str, version: int = 1) -> dict:
    return {
        "livecall_recording": version,
        "provider": provider,
        "livecall": livecall.__version__,
        "recorded_at": "2026-01-01T00:00:00+00:00",
        "scrubbed": [],
    }


def scripted_entries(provider: str, scenario=None, **options) -> list:
    """The simulator's call as a recording of one connection, 10 ms between entries."""
    spec = provider_spec(provider)
    credentials = spec.credentials
    script = build(spec, scenario or spec.default_scenario, ScenarioOptions(**options), credentials)
    path = (
        "/ws/v1/liveCalls"
        if provider == "hiya"
        else f"/v1/conversations/{credentials['conversation_id']}/live/ws"
    )
    entries = [dict(kind="open", path=path)]
    if script.initial is not None:
        entries.append(dict(kind="recv", text=encode(script.initial)))
    for step in script.steps:
        if isinstance(step, Send):
            entries.append(dict(kind="recv", text=encode(render(step.payload))))
        elif isinstance(step, AwaitJoin):
            join = {"type": "client:joinCall", "id": RECORDED_JOIN_ID}
            entries.append(dict(kind="send", text=json.dumps(join)))
            entries.append(dict(kind="recv", text=json.dumps({"type": "ack", "ackId": RECORDED_JOIN_ID})))
        elif isinstance(step, Close):
            entries += [dict(kind="recv", text=encode(render(payload))) for payload in step.payloads]
            entries.append(dict(kind="close", by="server", code=step.code, reason=step.reason))
    entries.append(dict(kind="end", reason="ended"))
    return [dict(t=round(0.01 * i, 3), conn=0, **entry) for i, entry in enumerate(entries)]


def write_recording(path: Path, provider: str, entries: list, *, first=None, tail: str = "") -> Path:
    lines = [json.dumps(first if first is not None else header(provider))]
    lines += [json.dumps(entry) for entry in entries]
    path.write_text("\n".join(lines) + "\n" + tail, encoding="utf-8")
    return path


@pytest.fixture
def hiya_recording(tmp_path):
    return write_recording(tmp_path / "hiya.jsonl", "hiya", scripted_entries("hiya"))


@pytest.fixture
def phonic_recording(tmp_path):
    return write_recording(tmp_path / "phonic.jsonl", "phonic", scripted_entries("phonic"))


def watch(replay: Replay, *, join: bool = False, **options) -> Recorder:
    """Watch the replay to the call's end with a client of its provider; what the plugins saw."""
    recorder = Recorder()
    client_class = livecall.HiyaClient if replay.provider == "hiya" else livecall.PhonicClient
    client = client_class(**replay.client_kwargs(), plugins=[recorder], **{**FAST, **options})
    if not join:
        client.run()
        return recorder
    screened = threading.Event()
    client.on(livecall.ScreeningEnded, lambda call, event: screened.set())
    with client:
        assert screened.wait(TIMEOUT)
        ack = client.join_call(timeout=TIMEOUT)
        client.wait(TIMEOUT)
    assert ack.ack_id != RECORDED_JOIN_ID  # the id the client used, not the recorded one
    return recorder


def texts(recorder: Recorder) -> list:
    return [line.text for line in recorder.events(livecall.Transcript)]


def expected_texts(provider: str) -> list:
    """What the simulator's own call gives the same client: the replay must give as much."""
    with livecall.testing.Simulator(provider, join_timeout=TIMEOUT) as simulator:
        recorder = Recorder()
        client_class = livecall.HiyaClient if provider == "hiya" else livecall.PhonicClient
        client = client_class(**simulator.client_kwargs(), plugins=[recorder], **FAST)
        if provider == "hiya":
            client.on(
                livecall.ScreeningEnded, lambda call, event: threading.Thread(target=client.join_call).start()
            )
        client.run()
    return texts(recorder)


# --- reading recordings -------------------------------------------------------------


def test_a_file_without_a_header_is_refused(tmp_path):
    path = write_recording(
        tmp_path / "r.jsonl", "hiya", [], first={"t": 0, "conn": 0, "kind": "open", "path": "/"}
    )
    with pytest.raises(RecordingError, match="not a livecall recording: its first line is no header"):
        read_recording(path)


def test_a_recording_of_an_unknown_format_version_is_refused(tmp_path):
    path = write_recording(tmp_path / "r.jsonl", "hiya", [], first=header("hiya", version=2))
    with pytest.raises(RecordingError, match="format 2; this livecall reads format 1"):
        read_recording(path)


def test_a_torn_last_line_is_skipped_with_a_warning(tmp_path, caplog):
    entries = scripted_entries("hiya")
    path = write_recording(tmp_path / "r.jsonl", "hiya", entries, tail='{"t": 9.9, "conn": 0, "ki')
    recording = read_recording(path)
    assert len(recording.entries) == len(entries)
    assert f"line {len(entries) + 2} is cut short" in caplog.text


def test_a_bad_line_inside_the_recording_is_refused_with_its_number(tmp_path):
    entries = scripted_entries("hiya")
    entries[2] = dict(entries[2], kind="whisper")
    path = write_recording(tmp_path / "r.jsonl", "hiya", entries)
    with pytest.raises(RecordingError, match="line 4: unknown kind 'whisper'"):
        read_recording(path)


def test_bad_arguments_are_refused_before_anything_is_served(hiya_recording):
    with pytest.raises(ValueError, match="unknown fault 'explode'"):
        Replay(hiya_recording, chaos=["explode"])
    with pytest.raises(ValueError, match="this recording has frames 1 to 12"):
        Replay(hiya_recording, chaos=["drop@99"])
    with pytest.raises(ValueError, match="close=CODE takes a close code"):
        Replay(hiya_recording, chaos=["close=12@2"])
    with pytest.raises(ValueError, match="speed must be a finite number >= 0"):
        Replay(hiya_recording, speed=-1)


# --- playing -----------------------------------------------------------------------


def test_a_hiya_replay_waits_for_the_join_and_acks_the_id_the_client_used(hiya_recording):
    with Replay(hiya_recording, speed=0) as replay:
        recorder = watch(replay, join=True)
        assert replay.wait_finished(TIMEOUT)
    assert texts(recorder) == expected_texts("hiya")
    assert [type(event) for event in recorder.events()][-1] is livecall.CallEnded


def test_a_phonic_replay_gives_what_the_simulated_conversation_gave(phonic_recording):
    with Replay(phonic_recording, speed=0) as replay:
        recorder = watch(replay)
        assert replay.wait_finished(TIMEOUT)
    assert texts(recorder) == expected_texts("phonic")
    assert replay.credentials["conversation_id"] == "conv_simulated-0001"


def test_speed_zero_does_not_wait_out_the_recorded_gaps(tmp_path):
    entries = scripted_entries("phonic")
    for number, entry in enumerate(entries):
        entry["t"] = 3600.0 * number  # an hour between frames: only speed 0 gets through in time
    path = write_recording(tmp_path / "slow.jsonl", "phonic", entries)
    with Replay(path, speed=0) as replay:
        recorder = watch(replay)
        assert replay.wait_finished(TIMEOUT)
    assert texts(recorder) == expected_texts("phonic")


def test_a_looping_replay_plays_the_whole_recording_to_each_watch(livecall_replay, phonic_recording):
    replay = livecall_replay(phonic_recording, speed=0, loop=True)
    first, second = watch(replay), watch(replay)
    assert texts(first) == texts(second) == expected_texts("phonic")
    assert not replay.finished


def test_the_fixture_stops_the_replay_with_the_test(livecall_replay, hiya_recording):
    replay = livecall_replay(hiya_recording, speed=0)
    assert replay.url.startswith("ws://127.0.0.1:")
    assert replay.awaits_join and replay.watch_args()[:2] == ["watch", "hiya"]


# --- chaos: each fault, and what livecall does about it ---------------------------------


def reconnects(recorder: Recorder) -> int:
    return len(recorder.events(livecall.Reconnecting))


@pytest.mark.parametrize("fault", ["drop@4", "close=1011@4", "stall@4"])
def test_a_broken_phonic_connection_resumes_from_the_latest_snapshot_without_a_line_lost_or_doubled(
    phonic_recording, fault
):
    with Replay(phonic_recording, speed=0, chaos=[fault]) as replay:
        recorder = watch(replay)
        assert replay.wait_finished(TIMEOUT)
    assert reconnects(recorder) == 1
    assert texts(recorder) == expected_texts("phonic")  # deduplicated by item_idx
    second = replay.connections[1].sent
    assert json.loads(second[0]) == json.loads(replay.connections[0].sent[-1])  # the snapshot again


@pytest.mark.parametrize("fault", ["drop@4", "close=1011@4", "stall@4"])
def test_a_broken_hiya_connection_goes_on_from_the_next_frame_and_repeats_nothing(hiya_recording, fault):
    with Replay(hiya_recording, speed=0, chaos=[fault]) as replay:
        recorder = watch(replay, join=True)
        assert replay.wait_finished(TIMEOUT)
    assert reconnects(recorder) == 1
    assert texts(recorder) == expected_texts("hiya")
    first, second = (record.sent for record in replay.connections[:2])
    assert len(first) == 3 and json.loads(second[0])["type"] == "transcript"  # no resend of the gap


def test_a_stall_the_client_sits_through_is_no_reconnect(phonic_recording):
    with Replay(phonic_recording, speed=0, chaos=["stall=0.1@4"]) as replay:
        recorder = watch(replay, ping_interval=30.0, ping_timeout=30.0)
        assert replay.wait_finished(TIMEOUT)
    assert reconnects(recorder) == 0 and len(replay.connections) == 1
    assert texts(recorder) == expected_texts("phonic")


def test_a_duplicated_phonic_snapshot_adds_no_line(phonic_recording):
    with Replay(phonic_recording, speed=0, chaos=["duplicate@4"]) as replay:
        recorder = watch(replay)
    sent = replay.connections[0].sent
    assert sent[3] == sent[4]
    assert texts(recorder) == expected_texts("phonic")


def test_a_duplicated_hiya_transcript_is_passed_on_twice(hiya_recording):
    with Replay(hiya_recording, speed=0, chaos=["duplicate@4"]) as replay:
        recorder = watch(replay, join=True)
    expected = expected_texts("hiya")
    assert texts(recorder) == expected[:3] + expected[2:]  # Hiya's lines carry no id to tell them apart


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_a_trickled_frame_arrives_whole(tmp_path, provider):
    path = write_recording(tmp_path / "r.jsonl", provider, scripted_entries(provider))
    with Replay(path, speed=0, chaos=["trickle@2", "trickle@50%"]) as replay:
        recorder = watch(replay, join=provider == "hiya")
    assert reconnects(recorder) == 0
    assert texts(recorder) == expected_texts(provider)


def test_a_refused_reconnect_ends_the_watch_as_refused_credentials(phonic_recording):
    with Replay(phonic_recording, speed=0, chaos=["refuse@4"]) as replay:
        recorder = Recorder()
        client = livecall.PhonicClient(**replay.client_kwargs(), plugins=[recorder], **FAST)
        with pytest.raises(livecall.AuthenticationError, match="HTTP 401"):
            client.run()
    assert reconnects(recorder) == 1
    assert [record.status for record in replay.connections] == [101, 401]
    assert recorder.of("call_end") == [livecall.EndReason.AUTH_FAILED]


# --- the command ------------------------------------------------------------------------


def livecall_command(*args: str, **options) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "livecall", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **options,
    )


def start_replay(*args: str) -> tuple:
    """``livecall replay ARGS`` and the watch command it printed."""
    replay = livecall_command("replay", *args)
    lines = [replay.stdout.readline() for _ in range(3)]
    assert lines[1] == "Watch it with:\n", "".join(lines) + replay.stderr.read()
    words = lines[2].split()
    assert words[0] == "livecall"
    return replay, words[1:]


def replay_and_watch(path: Path, *chaos: str) -> list:
    """``livecall replay PATH --speed 0`` watched by ``livecall watch --format jsonl`` to the
    end, both exiting with 0: the watch's JSON lines, as ``jsonl_without_received_at``."""
    replay, watch_args = start_replay(str(path), "--speed", "0", *chaos)
    watched = subprocess.run(
        [sys.executable, "-m", "livecall", *watch_args, "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert watched.returncode == 0, watched.stderr
    assert replay.wait(TIMEOUT) == 0, replay.stderr.read()
    provider = json.loads(path.read_text(encoding="utf-8").splitlines()[0])["provider"]
    assert ("--join" in watch_args) == (provider == "hiya")
    return jsonl_without_received_at(watched.stdout)


def jsonl_without_received_at(output: str) -> list:
    """The watch's JSON lines but for when each came, and Hiya's ids livecall makes up per watch
    (``call_id``, and the ``ackId`` of a join, a fresh id on every ``client:joinCall``)."""
    records = [json.loads(line) for line in output.splitlines()]
    for record in records:
        record.pop("received_at")
        if record["provider"] == "hiya":
            record["call_id"] = "call_ID"
            if record["event"] == "ack":
                record["ack_id"] = "ACK_ID"
    return records


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_livecall_replay_serves_the_recording_and_exits_when_it_is_over(tmp_path, provider):
    path = write_recording(tmp_path / "r.jsonl", provider, scripted_entries(provider))
    kinds = [record["event"] for record in replay_and_watch(path, "--chaos", "drop@3")]
    assert kinds.count("reconnecting") == 1 and kinds[-1] in ("call_ended", "conversation_ended")


def test_livecall_replay_refuses_a_bad_file_or_fault_with_a_usage_error(tmp_path, hiya_recording):
    not_one = tmp_path / "notes.txt"
    not_one.write_text("hello\n")
    for args, message in [
        ([str(not_one)], "recording line 1 is not a JSON value"),
        ([str(hiya_recording), "--chaos", "drop@0"], "the point is a frame number from 1"),
        ([str(hiya_recording), "--speed", "fast"], "expected a speed of 0 or more"),
    ]:
        completed = livecall_command("replay", *args)
        out, err = completed.communicate(timeout=TIMEOUT)
        assert completed.returncode == 2 and message in err, err


def test_the_help_names_every_fault():
    from livecall.cli import _replay

    assert [name.split("[")[0] for name in _replay.FAULTS.replace(" or ", ", ").split(", ")] == list(
        Replay.FAULTS
    )


# --- the end-to-end comparison: record, replay, watch ---------------------------------


def record_simulated(tmp_path: Path, provider: str, scenario: str) -> tuple:
    """``livecall record`` of a simulated call: the recording and the watch's JSON lines."""
    with livecall.testing.Simulator(provider, scenario, join_timeout=TIMEOUT) as simulator:
        join = ["--join"] if simulator.awaits_join else []
        args = simulator.watch_args(*join, "--format", "jsonl")
        path = tmp_path / f"{provider}-{scenario}.jsonl"
        recorded = subprocess.run(
            [sys.executable, "-m", "livecall", "record", *args[1:], "-o", str(path)],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
    assert recorded.returncode == 0, recorded.stderr
    return path, recorded.stdout


@pytest.mark.parametrize(("provider", "scenario"), [("hiya", "screening"), ("phonic", "sdk")])
def test_a_replayed_recording_gives_the_recorded_watch_line_for_line(tmp_path, provider, scenario):
    """Hiya with a join; Phonic's ``sdk`` call, with revisions and a tool call."""
    path, recorded_lines = record_simulated(tmp_path, provider, scenario)
    assert replay_and_watch(path) == jsonl_without_received_at(recorded_lines)


# --- the benchmark still runs -----------------------------------------------------------


def test_the_replay_benchmark_runs(tmp_path):
    output = tmp_path / "results.json"
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--quick", "--only", "replay", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(output.read_text())["results"]["replay"]
    assert set(result["frames_per_s"]) == {"replay_sends", "livecall_reads"}
    assert result["lost"] == {"replay_sends": 0, "livecall_reads": 0}
    assert shutil.which(sys.executable)
