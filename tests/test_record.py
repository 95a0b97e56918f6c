"""``livecall record`` and ``LiveClient.record()``: the recording format's writer, against the
simulator and hand-written servers on loopback, the command run as a subprocess."""

import base64
import json
import re
import resource
import signal
import stat
import subprocess
from datetime import datetime, timedelta
from typing import Any

import pytest
from cli_process import LIVECALL, SECRETS, TIMEOUT, Running, base_env, livecall, records

import livecall as lc
from livecall.testing import RawServer, Simulator, wait_until

CALLER = "+15551234567"


def record_args(sim: Simulator, *extra: str) -> list[str]:
    """``livecall record PROVIDER ...`` for the simulator: ``watch``'s own arguments."""
    return ["record", *sim.watch_args(*extra)[1:]]


def read(path: Any) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    header, *entries = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    return header, entries


def frames(entries: list[dict[str, Any]], conn: int = 0) -> list[Any]:
    """The frames received on connection ``conn``, as the server sent them (text, or bytes)."""
    return [
        entry["text"] if "text" in entry else base64.b64decode(entry["binary"])
        for entry in entries
        if entry["kind"] == "recv" and entry["conn"] == conn
    ]


def check_clock(entries: list[dict[str, Any]]) -> None:
    times = [entry["t"] for entry in entries]
    assert times[0] == 0.0 and times == sorted(times)
    assert [entry["conn"] for entry in entries] == sorted(entry["conn"] for entry in entries)


# --- what a recording holds -------------------------------------------------------------


def test_a_hiya_call_with_a_join_is_recorded_as_it_was_watched(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("hiya", "screening") as sim:
        result = livecall(*record_args(sim, "--join", "--format", "jsonl", "-o", str(path)))
        (connection,) = sim.connections
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    header, entries = read(path)
    assert header == {
        "livecall_recording": 1,
        "provider": "hiya",
        "livecall": lc.__version__,
        "recorded_at": header["recorded_at"],
        "scrubbed": [],
    }
    recorded_at = datetime.fromisoformat(header["recorded_at"])
    assert recorded_at.utcoffset() == timedelta(0) and header["recorded_at"].endswith("+00:00")
    check_clock(entries)
    assert entries[0] == {"t": 0.0, "conn": 0, "kind": "open", "path": connection.path}
    assert frames(entries) == list(connection.sent), "every frame, as sent, in order"
    kinds = [entry["kind"] for entry in entries]
    assert [kind for kind in kinds if kind != "send"] == ["open"] + ["recv"] * len(connection.sent) + [
        "close",
        "end",
    ]
    (sent,) = [entry["text"] for entry in entries if entry["kind"] == "send"]
    assert [sent] == list(connection.received) and json.loads(sent)["type"] == "client:joinCall"
    acked = next(
        i for i, entry in enumerate(entries) if '"ack"' in entry.get("text", "") and i != kinds.index("send")
    )
    assert kinds.index("send") < acked, "in the order it happened"
    assert entries[-2:] == [
        {
            "t": entries[-2]["t"],
            "conn": 0,
            "kind": "close",
            "by": "server",
            "code": 1000,
            "reason": "call ended",
        },
        {"t": entries[-1]["t"], "conn": 0, "kind": "end", "reason": "ended"},
    ]
    assert [record["event"] for record in records(result.stdout)][-1] == "call_ended", "watched as watch does"


def test_a_phonic_reconnect_is_recorded_connection_by_connection(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("phonic", "drop") as sim:
        result = livecall(*record_args(sim, "--format", "jsonl", "-o", str(path)))
        first, second = sim.connections
    assert result.returncode == 0, result.stderr
    header, entries = read(path)
    assert header["provider"] == "phonic" and header["scrubbed"] == []
    check_clock(entries)
    others = [(entry["conn"], entry["kind"]) for entry in entries if entry["kind"] != "recv"]
    assert others == [(0, "open"), (0, "lost"), (1, "open"), (1, "close"), (1, "end")]
    lost = next(entry for entry in entries if entry["kind"] == "lost")
    assert lost["cause"].startswith("closed with code 1006")
    assert [entry["path"] for entry in entries if entry["kind"] == "open"] == [first.path, second.path]
    assert "?" not in first.path and "/conv_simulated-0001/" in first.path
    assert frames(entries, 0) == list(first.sent) and frames(entries, 1) == list(second.sent)
    assert entries[-1]["reason"] == "ended"


def test_the_python_api_records_a_watch_and_refuses_what_it_cannot(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("phonic", "conversation") as sim:
        client = lc.PhonicClient(**sim.client_kwargs(), plugins=[])
        with pytest.raises(
            lc.ConfigurationError, match="cannot scrub words: what can be scrubbed is phones, text"
        ):
            client.record(path, scrub=["words"])
        with pytest.raises(lc.ConfigurationError, match="cannot write the recording"):
            client.record(tmp_path / "missing" / "call.jsonl")
        recording = client.record(path, scrub="phones")
        with pytest.raises(lc.LivecallError, match="already recorded"):
            client.record(tmp_path / "other.jsonl")
        client.run()
        with pytest.raises(lc.LivecallError, match="before start"):
            client.record(tmp_path / "late.jsonl")
        (connection,) = sim.connections
    assert isinstance(recording, lc.RecordingWriter)
    assert (recording.path, recording.scrub, recording.error, recording.unwritten) == (
        str(path),
        ("phones",),
        None,
        0,
    )
    header, entries = read(path)
    assert header["scrubbed"] == ["phones"]
    assert len(frames(entries)) == len(connection.sent) and CALLER not in path.read_text()
    assert not (tmp_path / "other.jsonl").exists() and not (tmp_path / "late.jsonl").exists()


def test_the_recording_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("hiya", "screening", join_timeout=0) as sim:
        result = livecall(*record_args(sim, "-q", "-o", str(path)))
    assert result.returncode == 0, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_file_that_cannot_be_created_is_a_usage_error_before_any_connection(tmp_path):
    with Simulator("hiya", "screening", join_timeout=0) as sim:
        result = livecall(*record_args(sim, "-o", str(tmp_path / "missing" / "call.jsonl")))
        assert sim.accepted == 0
    assert result.returncode == lc.ExitStatus.USAGE
    assert "livecall: error: cannot write the recording" in result.stderr and "No such file" in result.stderr


@pytest.mark.parametrize("scrub", ["phone", "phones,words", ","])
def test_an_unknown_scrub_is_a_usage_error(tmp_path, scrub):
    result = livecall("record", "hiya", "-o", str(tmp_path / "x.jsonl"), "--scrub", scrub)
    assert result.returncode == lc.ExitStatus.USAGE
    assert "choose from phones, text" in result.stderr


# --- no credential, and scrubbing -------------------------------------------------------------


def echo_credentials(secrets: list[str]):
    """A server that sends every credential back: in JSON, in a binary frame, in its close reason."""

    def play(peer):
        for secret in secrets:
            peer.send(
                peer.frame(peer.TEXT, json.dumps({"type": "error", "description": f"bad {secret}"}).encode())
            )
            peer.send(peer.frame(peer.TEXT, f"not json {secret}".encode()))
            peer.send(peer.frame(peer.BINARY, b"\x00\xff" + secret.encode() + b"\x01"))
        reason = f"bye {secrets[0]}".encode()[:100]
        peer.send(peer.frame(peer.CLOSE, (1000).to_bytes(2, "big") + reason))
        peer.receive_until(peer.CLOSE)

    return play


@pytest.mark.parametrize(
    "provider, flags",
    [
        ("hiya", ["--token", SECRETS["hiya"]["token"],
                  "--conversation-token", SECRETS["hiya"]["conversation_token"], "--user-id", "user-1"]),
        ("phonic", ["--api-key", SECRETS["phonic"]["api_key"], "--conversation-id", "conv_1"]),
    ],
)  # fmt: skip
def test_no_credential_reaches_the_recording_even_when_the_server_echoes_it(tmp_path, provider, flags):
    secrets = list(SECRETS[provider].values())
    server = RawServer(echo_credentials(secrets))
    path = tmp_path / "call.jsonl"
    try:
        result = livecall(
            "record", provider, "--url", server.url, *flags, "--max-retries", "0", "-o", str(path)
        )
    finally:
        server.stop()
    assert server.errors == [] and server.accepted == 1
    assert result.returncode == 0, result.stderr
    written = path.read_bytes()
    for secret in secrets:
        assert secret.encode() not in written
        assert base64.b64encode(secret.encode()) not in written
    _, entries = read(path)
    received = frames(entries)
    assert len(received) == 3 * len(secrets)
    assert all("***" in frame if isinstance(frame, str) else b"***" in frame for frame in received)
    assert received[2].startswith(b"\x00\xff***"), "binary frames are kept byte for byte, but the secret"
    assert entries[-2]["kind"] == "close" and entries[-2]["reason"] == "bye ***"


def test_phonic_audio_urls_are_blanked(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("phonic", "conversation", audio_urls=True) as sim:
        result = livecall(*record_args(sim, "-q", "-o", str(path)))
        urls = {
            item["audio_url"]
            for frame in sim.connections[0].sent
            for item in json.loads(frame).get("conversation", {}).get("items", [])
            if item.get("audio_url")
        }
    assert result.returncode == 0, result.stderr
    assert urls and not any(url in path.read_text() for url in urls)
    assert '\\"audio_url\\":\\"***\\"' in path.read_text().replace(" ", "")


def x_out(text: str) -> str:
    return re.sub(r"[^\W_]", "x", text)


def test_scrubbing_hiya_replaces_numbers_with_stable_placeholders_and_words_letter_by_letter(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("hiya", "screening") as sim:
        result = livecall(
            *record_args(
                sim, "--join", "--format", "jsonl", "-o", str(path), "--scrub", "phones", "--scrub", "text"
            )
        )
        sent = [json.loads(frame) for frame in sim.connections[0].sent]
    assert result.returncode == 0, result.stderr
    header, entries = read(path)
    assert header["scrubbed"] == ["phones", "text"]
    assert CALLER not in path.read_text()
    recorded = [json.loads(frame) for frame in frames(entries)]
    assert recorded[0]["phone"] == "+15550000001"
    said = [message["msg"] for message in sent if message["type"] in ("transcript", "event:end")]
    assert [message["msg"] for message in recorded if "msg" in message] == [x_out(text) for text in said]
    assert all(len(x_out(text)) == len(text) for text in said)
    unchanged = [{k: v for k, v in message.items() if k not in ("msg", "phone")} for message in sent]
    assert [
        {k: v for k, v in message.items() if k not in ("msg", "phone")} for message in recorded
    ] == unchanged
    (join,) = [entry for entry in entries if entry["kind"] == "send"]
    assert json.loads(join["text"])["type"] == "client:joinCall", "the client's own messages keep their shape"
    transcripts = [record["text"] for record in records(result.stdout) if record["event"] == "transcript"]
    assert transcripts[0].startswith("Hi, this is Alex"), "only the recording is scrubbed"


def test_scrubbing_phonic_covers_the_conversation_items_and_tool_calls(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("phonic", "sdk") as sim:
        result = livecall(*record_args(sim, "-q", "-o", str(path), "--scrub", "text,phones"))
        sent = [json.loads(frame) for frame in sim.connections[0].sent]
    assert result.returncode == 0, result.stderr
    assert header_and_text(path)[0]["scrubbed"] == ["phones", "text"]
    text = header_and_text(path)[1]
    recorded = [json.loads(frame) for frame in frames(read(path)[1])]
    assert [message.get("type") for message in recorded] == [message.get("type") for message in sent]
    placeholders = {}
    for before, after in zip(sent, recorded):
        compare(before, after, placeholders, key=None, words=False)
    assert list(placeholders.values()) == ["+15550000001", "+15550000002"], "in order of first appearance"
    assert CALLER in placeholders and not any(number in text for number in placeholders)


WORDS = {
    "text", "live_transcript", "post_call_transcript", "redacted_transcript", "retranscribed_text",
    "transcript_corrections", "summary", "welcome_message", "request_body", "response_body", "query_params",
}  # fmt: skip


def compare(before: Any, after: Any, placeholders: dict[str, str], key: Any, words: bool) -> None:
    """``after`` is ``before`` scrubbed: words x-ed out, phone numbers placeholders, the rest as it was."""
    if isinstance(before, dict):
        assert isinstance(after, dict) and list(after) == list(before)
        for name, value in before.items():
            compare(value, after[name], placeholders, name, words or name in WORDS)
    elif isinstance(before, list):
        assert isinstance(after, list) and len(after) == len(before)
        for value, scrubbed in zip(before, after):
            compare(value, scrubbed, placeholders, None, words)
    elif isinstance(before, str) and words:
        assert after == x_out(before) and len(after) == len(before)
    elif isinstance(before, str) and key and "phone" in key and before != "anonymous":
        assert placeholders.setdefault(before, after) == after, "the same number, the same placeholder"
        assert re.fullmatch(r"\+1555\d{7}", after)
    else:
        assert after == before


def header_and_text(path: Any) -> tuple[dict[str, Any], str]:
    return read(path)[0], path.read_text(encoding="utf-8")


# --- what survives a crash and a full disk ------------------------------------------------


def test_a_process_killed_mid_call_leaves_a_recording_of_whole_lines(tmp_path):
    path = tmp_path / "call.jsonl"
    with Simulator("hiya", "screening", join_timeout=60) as sim:  # the call waits for a join: mid-call
        watch = Running(record_args(sim, "-o", str(path)))
        try:
            wait_until(lambda: path.exists() and b"event:end" in path.read_bytes(), timeout=TIMEOUT)
            watch.process.send_signal(signal.SIGKILL)
            assert watch.wait() == -signal.SIGKILL
        finally:
            watch.stop()
        assert not sim.call_ended
        sent = list(sim.connections[0].sent)
    written = path.read_bytes()
    assert written.endswith(b"\n"), "each line is written whole"
    header, entries = read(path)
    assert header["livecall_recording"] == 1
    assert [entry["kind"] for entry in entries] == ["open"] + ["recv"] * len(sent)
    assert frames(entries) == sent


def disk_full_past(size: int):
    """In the child: files cannot grow past ``size`` bytes, as on a full disk (EFBIG, the signal ignored)."""

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    return limit


def test_a_full_disk_stops_the_recording_not_the_watch_and_exits_5(tmp_path):
    path = tmp_path / "call.jsonl"
    room = 600  # the header and the first frames: the disk fills mid-call, mid-line
    with Simulator("hiya", "screening", join_timeout=0) as sim:
        done = subprocess.run(
            [*LIVECALL, *record_args(sim, "--format", "jsonl", "-o", str(path))], env=base_env(),
            capture_output=True, text=True, timeout=TIMEOUT, preexec_fn=disk_full_past(room),
        )  # fmt: skip
        sent = list(sim.connections[0].sent)
    assert done.returncode == lc.ExitStatus.INCOMPLETE, done.stderr
    kinds = [record["event"] for record in records(done.stdout)]
    assert kinds[0] == "call_started" and kinds[-1] == "call_ended", "the watch went on to the call's end"
    written = path.read_bytes()
    assert len(written) <= room and written.endswith(b"\n"), "whole lines only: the torn one is cut off"
    header, entries = read(path)
    assert header["provider"] == "hiya" and 0 < len(frames(entries)) < len(sent)
    assert frames(entries) == sent[: len(frames(entries))]
    unwritten = 1 + len(sent) + 2 - len(entries)  # open, the frames, close and end
    lines = done.stderr.splitlines()
    assert lines[0] == f"livecall: error: the recording {path} stopped: File too large; the watch goes on"
    assert lines[-1] == (
        f"livecall: error: the recording {path} is incomplete: {unwritten} entries could not be written "
        "(File too large)"
    )
    assert len(lines) == 2 and "Traceback" not in done.stderr


def test_scrubbing_phones_finds_numbers_in_running_text_and_keeps_anonymous(tmp_path):
    said = "Call +1 555 123 4567 or (555) 765-4321; again, +15551234567."
    messages = [
        {"type": "event:start", "phone": "anonymous", "timestamp": "2025-07-30T14:02:11.198Z"},
        {"type": "transcript", "msg": said, "role": "other", "offset": 1.0},
    ]

    def play(peer):
        for message in messages:
            peer.send(peer.frame(peer.TEXT, json.dumps(message).encode()))
        peer.send(peer.frame(peer.CLOSE, (1000).to_bytes(2, "big")))
        peer.receive_until(peer.CLOSE)

    server = RawServer(play)
    path = tmp_path / "call.jsonl"
    try:
        flags = ["--token", "t" * 20, "--conversation-token", "c" * 20, "--user-id", "u"]
        result = livecall("record", "hiya", "--url", server.url, *flags, "-o", str(path), "--scrub", "phones")
    finally:
        server.stop()
    assert result.returncode == 0, result.stderr
    started, line = [json.loads(frame) for frame in frames(read(path)[1])]
    assert started["phone"] == "anonymous"
    assert line["msg"] == "Call +15550000001 or +15550000002; again, +15550000001."
