"""The embedded simulator, driven by a plain websocket-client over real loopback sockets."""

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Optional, Union
from urllib.parse import urlencode

import pytest
import websocket

import livecall
from livecall.testing import ConnectionRecord, ScenarioOptions, Simulator, scenarios

pytest_plugins = ["pytester"]

Frame = Union[str, bytes]
Ending = tuple[str, Any]  # ("close", code), ("lost", None) or ("open", None)
REPO = Path(livecall.__file__).resolve().parents[1]
HIYA_PATH = "/ws/v1/liveCalls"


# --- helpers -------------------------------------------------------------------


def hiya_request(sim: Simulator, **overrides: Optional[str]) -> tuple[str, list[str]]:
    """URL and headers a correct Hiya client sends; an override of None leaves a part out."""
    parts = {
        "path": HIYA_PATH,
        "conversationToken": sim.credentials["conversation_token"],
        "Authorization": "Bearer " + sim.credentials["token"],
        "x-hiya-account-user-id": sim.credentials["user_id"],
        "x-hiya-product-version": "1.2.3",
    }
    parts.update(overrides)
    query = {"conversationToken": parts["conversationToken"]} if parts["conversationToken"] else {}
    names = ("Authorization", "x-hiya-account-user-id", "x-hiya-product-version")
    headers = [f"{name}: {parts[name]}" for name in names if parts[name]]
    return f"{sim.url}{parts['path']}?{urlencode(query)}", headers


def phonic_request(
    sim: Simulator, session: bool = False, **overrides: Optional[str]
) -> tuple[str, list[str]]:
    """URL and headers of a Phonic client (API key, or session token when ``session``)."""
    expected = sim.credentials
    conversation_id = overrides.get("conversation_id", expected["conversation_id"])
    url = f"{sim.url}/v1/conversations/{conversation_id}/live/ws"
    if session:
        url += "?" + urlencode({"session_token": overrides.get("session_token", expected["session_token"])})
    authorization = overrides.get("Authorization", None if session else "Bearer " + expected["api_key"])
    return url, [f"Authorization: {authorization}"] if authorization else []


def connect(sim: Simulator, **overrides: Any) -> websocket.WebSocket:
    request = hiya_request if sim.provider == "hiya" else phonic_request
    url, headers = request(sim, **overrides)
    return websocket.create_connection(url, header=headers, timeout=5)


def handshake_status(sim: Simulator, **overrides: Any) -> int:
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        connect(sim, **overrides)
    return refused.value.status_code


def next_frame(ws: websocket.WebSocket) -> tuple[str, Any]:
    """``("text", str)``, ``("binary", bytes)``, ``("close", code)`` or ``("lost", None)``."""
    try:
        opcode, data = ws.recv_data(control_frame=True)
    except (OSError, websocket.WebSocketConnectionClosedException):
        return "lost", None
    if opcode == websocket.ABNF.OPCODE_CLOSE:
        return "close", struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
    if opcode == websocket.ABNF.OPCODE_TEXT:
        return "text", data.decode()
    return "binary", data


def read_until(ws: websocket.WebSocket, stop_type: Optional[str] = None) -> tuple[list[Frame], Ending]:
    """Frames up to and including a JSON message of ``stop_type``, or until the connection ends
    (then the last item is how it ended: close and its code, or lost).

    After the closing handshake the client drops TCP, as a real client does:
    the server waits for that before it calls the connection closed.
    """
    frames: list[Frame] = []
    while True:
        kind, value = next_frame(ws)
        if kind in ("close", "lost"):
            ws.shutdown()
            return frames, (kind, value)
        frames.append(value)
        if stop_type and kind == "text" and message_type(value) == stop_type:
            return frames, ("open", None)


def message_type(frame: Frame) -> Optional[str]:
    try:
        message = json.loads(frame)
    except ValueError:
        return None
    return message.get("type") if isinstance(message, dict) else None


def messages(frames: list[Frame]) -> list[dict[str, Any]]:
    return [json.loads(frame) for frame in frames]


def closed_record(sim: Simulator, index: int) -> ConnectionRecord:
    """The ``index``-th connection record, once that connection is over."""

    def closed() -> Optional[ConnectionRecord]:
        records = sim.connections
        return records[index] if len(records) > index and records[index].closed else None

    return sim.wait_for(closed)


def finish_call(sim: Simulator, limit: int = 10) -> tuple[list[Frame], int]:
    """Reconnect until the call ends; all frames seen and the number of connections used."""
    seen: list[Frame] = []
    for attempt in range(1, limit + 1):
        ws = connect(sim)
        frames, ending = read_until(ws, "event:end")
        if ending == ("open", None):
            try:
                ws.send(json.dumps({"type": "client:joinCall", "id": f"join-{attempt}"}))
            except (OSError, websocket.WebSocketConnectionClosedException):
                pass  # cut meanwhile: what is left to read says how
            more, ending = read_until(ws)
            frames += more
        seen += frames
        if ending == ("close", 1000):
            return seen, attempt
    raise AssertionError(f"the call did not end within {limit} connections")


# --- catalogue and construction ----------------------------------------------------


def test_scenarios_lists_each_provider_with_its_default_first():
    for provider, default in (("hiya", "screening"), ("phonic", "conversation")):
        names = [info.name for info in scenarios(provider)]
        assert names[0] == default
        assert {"flood", "drop", "silence", "malformed", "auth", "auth-close"} <= set(names)
        assert all(info.summary and info.provider == provider for info in scenarios(provider))


@pytest.mark.parametrize(
    "scenario, kwargs, error",
    [
        ("nope", {}, ValueError),
        ("screening", {"api_key": "x"}, TypeError),  # a Phonic credential given to Hiya
        ("drop", {"drop_mode": 1006}, ValueError),
        ("drop", {"drop_at": (99,)}, ValueError),
        ("auth+drop", {}, ValueError),
        ("screening+flood", {}, ValueError),
    ],
)
def test_bad_scenarios_and_options_fail_at_construction(scenario, kwargs, error):
    with pytest.raises(error):
        Simulator("hiya", scenario, **kwargs)


def test_client_kwargs_are_exactly_what_the_clients_take():
    with Simulator("hiya", token="t1", conversation_token="ct1", user_id="u1") as hiya:
        assert hiya.client_kwargs() == dict(url=hiya.url, token="t1", conversation_token="ct1", user_id="u1")
    with Simulator("phonic", conversation_id="conv_1", api_key="k1") as phonic:
        assert phonic.client_kwargs() == dict(url=phonic.url, conversation_id="conv_1", api_key="k1")
    assert phonic.url.startswith("ws://127.0.0.1:") and phonic.port > 0


def test_reprs_never_show_credentials():
    secrets = dict(token="tok-SECRET-1", conversation_token="ct-SECRET-2", user_id="u")
    with Simulator("hiya", **secrets) as sim:
        connect(sim).close()
        closed_record(sim, 0)
        shown = repr(sim) + repr(sim.connections)
    assert "SECRET" not in shown
    assert "hiya/screening" in shown


# --- handshakes ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides, status",
    [
        ({"path": "/ws/v1/other"}, 404),
        ({"Authorization": None}, 401),
        ({"Authorization": "Bearer wrong"}, 401),
        ({"conversationToken": None}, 401),
        ({"conversationToken": "wrong"}, 401),
        ({"x-hiya-account-user-id": None}, 400),
        ({"x-hiya-account-user-id": "someone-else"}, 403),
    ],
)
def test_hiya_handshake_checks(overrides, status):
    with Simulator("hiya") as sim:
        assert handshake_status(sim, **overrides) == status
        assert (sim.accepted, sim.rejected) == (0, 1)
        assert sim.connections[0].status == status


@pytest.mark.parametrize(
    "session, overrides, status",
    [
        (False, {"conversation_id": "conv_other"}, 403),
        (False, {"Authorization": "Bearer wrong"}, 401),
        (False, {"Authorization": None}, 401),
        (True, {"session_token": "wrong"}, 401),
        (True, {"Authorization": "Bearer sim-phonic-key"}, 401),  # never both
    ],
)
def test_phonic_handshake_checks(session, overrides, status):
    with Simulator("phonic") as sim:
        assert handshake_status(sim, session=session, **overrides) == status


def test_phonic_accepts_a_session_token_without_authorization_header():
    with Simulator("phonic") as sim:
        ws = connect(sim, session=True)
        assert message_type(ws.recv()) == "conversation-updated"
        record = sim.connections[0]
        assert record.query["session_token"] == sim.credentials["session_token"]
        assert record.header("authorization") is None
        ws.close()


def test_unknown_path_is_404_for_phonic():
    with Simulator("phonic") as sim:
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(sim.url + "/v1/conversations", timeout=5)
        assert refused.value.status_code == 404


# --- Hiya protocol ------------------------------------------------------------------------


def test_hiya_screening_waits_for_join_then_finishes(hiya_simulator):
    sim = hiya_simulator
    ws = connect(sim)
    screened, _ = read_until(ws, "event:end")
    first = messages(screened)
    assert first[0]["type"] == "event:start" and first[0]["phone"].startswith("+")
    assert first[0]["timestamp"].endswith("Z")
    transcripts = [m for m in first if m["type"] == "transcript"]
    assert {m["role"] for m in transcripts} == {"assistant", "other"}
    assert all(isinstance(m["offset"], float) for m in transcripts)
    assert not sim.joined
    ws.send(json.dumps({"type": "client:joinCall", "id": "j-1"}))
    rest, ending = read_until(ws)
    rest = messages(rest)
    assert rest[0] == {"type": "ack", "ackId": "j-1"}
    assert {m["role"] for m in rest if m["type"] == "transcript"} == {"user", "other"}
    assert rest[-1]["type"] == "event:callEnd"
    assert ending == ("close", 1000)
    ws.close()
    record = closed_record(sim, 0)
    assert record.header("x-hiya-product-version") == "1.2.3"
    assert json.loads(record.received[0]) == {"type": "client:joinCall", "id": "j-1"}
    assert (record.server_close_code, record.client_close_code) == (1000, 1000)
    assert sim.joined and sim.call_ended


def test_hiya_screening_goes_on_without_join_after_the_timeout():
    with Simulator("hiya", join_timeout=0.2) as sim:
        frames, ending = read_until(connect(sim))
        types = [m["type"] for m in messages(frames)]
        assert "ack" not in types and types[-1] == "event:callEnd"
        assert ending == ("close", 1000)


def test_hiya_end_call_is_acked_then_ends_the_call(hiya_simulator):
    ws = connect(hiya_simulator)
    read_until(ws, "event:end")
    ws.send(json.dumps({"type": "client:endCall", "id": 7}))
    frames, ending = read_until(ws)
    assert [m["type"] for m in messages(frames)] == ["ack", "event:callEnd"]
    assert messages(frames)[0]["ackId"] == 7
    assert ending == ("close", 1000)


@pytest.mark.parametrize(
    "frame",
    [
        "{oops",
        json.dumps({"type": "client:joinCall"}),
        json.dumps({"id": "1"}),
        json.dumps({"type": "client:dance", "id": "2"}),
        json.dumps([1]),
        b"\x01\x02",
    ],
)
def test_hiya_answers_bad_client_messages_with_an_error(hiya_simulator, frame):
    ws = connect(hiya_simulator)
    read_until(ws, "event:end")
    ws.send_binary(frame) if isinstance(frame, bytes) else ws.send(frame)
    reply = json.loads(ws.recv())
    assert reply["type"] == "error" and reply["description"]
    assert not hiya_simulator.joined
    ws.close()


def test_newest_connection_takes_the_call_over(hiya_simulator):
    first = connect(hiya_simulator)
    read_until(first, "event:end")
    second = connect(hiya_simulator)
    assert read_until(first) == ([], ("close", 1001))
    second.send(json.dumps({"type": "client:joinCall", "id": "j"}))
    frames, ending = read_until(second)
    assert messages(frames)[0] == {"type": "ack", "ackId": "j"} and ending == ("close", 1000)


def test_a_client_that_leaves_and_comes_back_resumes_the_call(hiya_simulator):
    first = connect(hiya_simulator)
    read_until(first, "event:end")
    first.close()
    again = connect(hiya_simulator)
    again.send(json.dumps({"type": "client:joinCall", "id": "back"}))
    frames, ending = read_until(again)
    types = [m["type"] for m in messages(frames)]
    assert types[:2] == ["ack", "transcript"] and "event:start" not in types and ending == ("close", 1000)


@pytest.mark.parametrize(
    "provider, replay",
    [
        ("hiya", ["event:callEnd"]),
        ("phonic", ["conversation-updated", "conversation-ended"]),
    ],
)
def test_an_ended_call_stays_ended(livecall_simulator, provider, replay):
    sim = livecall_simulator(provider, join_timeout=0)
    finish_call(sim)
    frames, ending = read_until(connect(sim))
    assert [m["type"] for m in messages(frames)] == replay and ending == ("close", 1000)


# --- Phonic protocol --------------------------------------------------------------------


def test_phonic_conversation_grows_then_ends(phonic_simulator):
    ws = connect(phonic_simulator)
    ws.send("the client talking on a server-to-client stream")
    frames, ending = read_until(ws)
    updates = [m["conversation"] for m in messages(frames[:-1])]
    assert messages(frames)[-1] == {"type": "conversation-ended"} and ending == ("close", 1000)
    assert updates[0]["items"] == []  # the initial state, on connecting
    counts = [len(update["items"]) for update in updates]
    assert counts == sorted(counts) and counts[-1] >= 4
    items = updates[-1]["items"]
    assert [item["item_idx"] for item in items] == list(range(len(items)))
    assert any(item["text"] is None and item["live_transcript"] for item in items)
    assert any("id" not in item for item in items)
    texts = [{item["item_idx"]: item["text"] for item in update["items"]} for update in updates]
    assert any(
        len(texts[i][idx] or "") < len(texts[i + 1][idx] or "")
        for i in range(len(texts) - 1)
        for idx in texts[i]
    ), "no item's text grew from one snapshot to the next"
    last = updates[-1]
    assert last["from_phone_number"] == last["call_info"]["from_phone_number"]
    assert last["id"] == phonic_simulator.credentials["conversation_id"] and last["is_live"]
    record = closed_record(phonic_simulator, 0)
    assert record.received == ("the client talking on a server-to-client stream",)
    assert len(record.sent) == len(frames)


def test_phonic_reconnect_starts_with_the_current_snapshot():
    with Simulator("phonic", "drop", drop_at=(3,), drop_mode=1012, lose=1) as sim:
        first, ending = read_until(connect(sim))
        assert ending == ("close", 1012)
        assert closed_record(sim, 0).server_close_code == 1012
        seen = len(messages(first)[-1]["conversation"]["items"])
        second = connect(sim)
        items = json.loads(second.recv())["conversation"]["items"]
        assert len(items) == seen + 1  # the update sent while nobody listened is in it
        second.close()


# --- faults ------------------------------------------------------------------------


def test_hiya_reset_drop_loses_what_was_said_meanwhile_then_resumes():
    with Simulator("hiya", "drop", drop_at=(3,), lose=1, join_timeout=0) as sim:
        first, ending = read_until(connect(sim))
        assert ending == ("lost", None) and len(first) == 3
        assert closed_record(sim, 0).reset
        assert closed_record(sim, 0).server_close_code is None
        rest, ending = read_until(connect(sim))
        script = sim.connections[0].sent + sim.connections[1].sent
        assert messages(rest)[0]["msg"] == messages(script)[3]["msg"]
        assert ending == ("close", 1000)
        assert len(first) + 1 + len(rest) == 11  # start, 8 transcripts, screening end, callEnd


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
@pytest.mark.parametrize("mode", ["reset", 1001, 1011, 1012])
def test_each_drop_mode_cuts_and_the_call_resumes(provider, mode):
    with Simulator(provider, "drop", drop_mode=mode, join_timeout=0) as sim:
        frames, used = finish_call(sim)
        assert used == 2 and sim.call_ended
        first = closed_record(sim, 0)
        assert first.reset == (mode == "reset")
        assert first.server_close_code == (None if mode == "reset" else mode)


def test_seeded_random_drops_repeat_exactly():
    options = ScenarioOptions(drops=3, seed=11, drop_mode="random")
    plan = options.drop_plan(10)
    assert plan == ScenarioOptions(drops=3, seed=11, drop_mode="random").drop_plan(10)
    assert len(plan) == 3 and all(1 <= position <= 9 for position, _ in plan)
    with Simulator("phonic", "drop", drops=3, seed=11, drop_mode="random") as sim:
        _, used = finish_call(sim)
        assert used == 4 and sim.accepted == 4


def test_silence_is_a_dead_peer_until_the_client_reconnects():
    with Simulator("hiya", "silence", silence_at=2, join_timeout=0) as sim:
        silent = connect(sim)
        assert len(read_until(silent, "transcript")[0]) == 2
        sim.wait_for(lambda: sim.connections[0].silenced)
        silent.ping("anyone there?")
        silent.send(json.dumps({"type": "client:joinCall", "id": "unheard"}))
        silent.settimeout(0.5)
        with pytest.raises(websocket.WebSocketTimeoutException):  # no pong, no ack, no FIN
            silent.recv_data(control_frame=True)
        assert not sim.connections[0].closed  # TCP still open
        silent.settimeout(5)
        rest, ending = read_until(connect(sim))
        assert ending == ("close", 1000) and messages(rest)[-1]["type"] == "event:callEnd"
        assert next_frame(silent) == ("lost", None)  # taken over, then cut with a reset
        assert closed_record(sim, 0).reset and sim.connections[0].server_close_code is None


def test_stop_is_bounded_with_a_silent_connection_and_a_half_open_one(returns):
    sim = Simulator("phonic", "silence").start()
    silent = connect(sim)
    sim.wait_for(lambda: sim.connections and sim.connections[0].silenced)
    half_open = socket.create_connection(("127.0.0.1", sim.port))  # never sends its handshake
    # A stop() timeout far beyond the hang guard: a stop() that waited on either peer fails the guard.
    returns(sim.stop, timeout=120.0)
    returns(sim.stop)  # idempotent
    assert read_until(silent)[1] == ("lost", None)
    half_open.settimeout(5)
    try:
        assert half_open.recv(1) == b""
    except ConnectionResetError:
        pass
    half_open.close()


def test_stop_closes_open_calls_with_1001():
    sim = Simulator("hiya").start()
    ws = connect(sim)
    read_until(ws, "event:end")
    sim.stop()
    assert read_until(ws) == ([], ("close", 1001))
    assert closed_record(sim, 0).server_close_code == 1001


def test_wait_for_call_over_returns_false_once_another_thread_stops_the_simulator(returns):
    sim = Simulator("phonic", "auth").start()  # a call that never ends
    stopper = threading.Thread(target=sim.stop)
    stopper.start()
    assert returns(sim.wait_for_call_over) is False
    stopper.join()
    assert sim.wait_for_call_over(0) is False and not sim.call_ended


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_auth_refuses_every_handshake(provider):
    with Simulator(provider, "auth") as sim:
        assert handshake_status(sim) == 401
        assert handshake_status(sim) == 401
        assert (sim.accepted, sim.rejected) == (0, 2)


@pytest.mark.parametrize(
    "provider, describe",
    [
        ("hiya", lambda m: m["description"]),
        ("phonic", lambda m: m["error"]["message"]),
    ],
)
def test_auth_close_sends_an_error_then_1008(provider, describe):
    with Simulator(provider, "auth-close") as sim:
        frames, ending = read_until(connect(sim))
        (error,) = messages(frames)
        assert error["type"] == "error" and describe(error)
        assert ending == ("close", 1008)
        assert sim.accepted == 1 and not sim.call_ended


@pytest.mark.parametrize("provider", ["hiya", "phonic"])
def test_malformed_frames_are_mixed_into_a_call_that_still_ends(provider):
    with Simulator(provider, "malformed", join_timeout=0) as sim:
        frames, ending = read_until(connect(sim))
        assert ending == ("close", 1000)
        binary = [frame for frame in frames if isinstance(frame, bytes)]
        decoded = []
        for frame in frames:
            try:
                decoded.append(json.loads(frame))
            except ValueError:
                decoded.append(None)
        objects = [m for m in decoded if isinstance(m, dict)]
        assert len(binary) == 1 and None in decoded and [1, 2, 3] in decoded
        assert any("type" not in m for m in objects)
        known = {
            "event:start",
            "transcript",
            "event:end",
            "event:callEnd",
            "conversation-updated",
            "conversation-ended",
        }
        assert any(m.get("type") not in known for m in objects if "type" in m)
        roles = {m.get("role") for m in objects} | {
            item["role"]
            for m in objects
            if isinstance(m.get("conversation", {}).get("items"), list)
            for item in m["conversation"]["items"]
        }
        assert roles - {None, "assistant", "user", "other"}
        assert [m.get("type") for m in objects][-1] in {"event:callEnd", "conversation-ended"}


def test_hiya_flood_stamps_each_transcript_with_its_send_time():
    before = time.time()
    with Simulator("hiya", "flood", flood_count=300, pace=10) as sim:  # pace is ignored by flood
        frames, ending = read_until(connect(sim))
    transcripts = [m for m in messages(frames) if m["type"] == "transcript"]
    assert len(transcripts) == 300 and ending == ("close", 1000)
    offsets = [m["offset"] for m in transcripts]
    assert offsets == sorted(offsets) and before <= offsets[0] <= offsets[-1] <= time.time()


def test_phonic_flood_stamps_each_snapshot_with_its_send_time():
    with Simulator("phonic", "flood", flood_count=50) as sim:
        frames, _ = read_until(connect(sim))
    updates = [m for m in messages(frames) if m["type"] == "conversation-updated"][1:]
    assert len(updates) == 50
    stamps = [update["conversation"]["items"][0]["sent_at"] for update in updates]
    assert stamps == sorted(stamps)


def test_faults_compose_with_other_scenarios():
    with Simulator("hiya", "flood+drop", flood_count=20, drop_at=(10,), lose=0) as sim:
        frames, used = finish_call(sim)
    assert used == 2 and len([f for f in frames if message_type(f) == "transcript"]) == 20


def test_pace_spaces_messages_out():
    with Simulator("phonic", pace=0.05) as sim:
        ws = connect(sim)
        started = time.monotonic()
        read_until(ws)
    assert time.monotonic() - started >= 0.05 * 6


# --- pytest plugin -------------------------------------------------------------------


def test_plugin_module_does_not_import_websockets():
    code = "import sys, livecall.testing.pytest_plugin; sys.exit('websockets' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], cwd=str(REPO)).returncode == 0


def test_plugin_fixtures_work_for_third_party_tests(pytester):
    pytester.makepyfile(
        """
        import websocket

        def test_hiya(hiya_simulator):
            kwargs = hiya_simulator.client_kwargs()
            assert set(kwargs) == {"url", "token", "conversation_token", "user_id"}

        def test_phonic(phonic_simulator):
            kwargs = phonic_simulator.client_kwargs()
            ws = websocket.create_connection(
                kwargs["url"] + "/v1/conversations/" + kwargs["conversation_id"] + "/live/ws",
                header=["Authorization: Bearer " + kwargs["api_key"]], timeout=5)
            assert '"conversation-updated"' in ws.recv()
            ws.close()

        def test_factory(livecall_simulator):
            sim = livecall_simulator("hiya", "auth", token="abc")
            assert sim.credentials["token"] == "abc" and sim.scenario == "auth"
        """
    )
    result = pytester.runpytest_inprocess("-p", "no:livecall", "-p", "livecall.testing.pytest_plugin")
    result.assert_outcomes(passed=3)
