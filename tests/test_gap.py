"""The ``gap`` event: one per outage between two connections, against the simulator on loopback."""

import argparse
import io
import re
import threading
from datetime import datetime, timezone

import pytest
from cli_process import livecall, records
from relay import Relay

import livecall as lc
from livecall import EndReason, Gap, Reconnecting, Transcript
from livecall.default_plugins.output import TextTranscript
from livecall.plugins import create_plugin_manager
from livecall.testing import Recorder, Replay, Simulator

FAST = dict(ping_interval=5.0, ping_timeout=5.0, close_timeout=1.0, backoff=lc.Backoff(0.01, 0.05))
UTC = timezone.utc


class Gate:
    """A relay's ``wrap`` that turns away the connections numbered in ``refused`` (from 1) before
    the handshake, and lets the others through to the simulator."""

    def __init__(self, refused):
        self.refused = refused
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, relay, sock):
        with self._lock:
            self.count += 1
            number = self.count
        if self.refused(number):
            raise OSError(f"connection {number} turned away")  # the relay closes it
        return sock


def split_at(events, gap):
    """The events before the gap's ``reconnecting`` events, and those after the gap."""
    position = next(i for i, event in enumerate(events) if event is gap)
    start = position
    while start and isinstance(events[start - 1], Reconnecting):
        start -= 1
    return events[:start], events[start:position], events[position + 1 :]


def check_times(gap):
    assert gap.lost_at.tzinfo == UTC and gap.reopened_at.tzinfo == UTC
    assert gap.lost_at <= gap.reopened_at
    assert gap.received_at == gap.reopened_at


def test_a_hiya_drop_is_one_gap_between_the_two_connections_that_nothing_fills(client_for, recorder):
    with Simulator("hiya", "drop", join_timeout=0.2) as sim:
        client = client_for(sim)
        client.run()
        assert sim.accepted == 2
    [gap] = recorder.events(Gap)
    [reconnecting] = recorder.events(Reconnecting)
    check_times(gap)
    assert gap.replayed is False
    assert gap.reason == reconnecting.reason and gap.reason.startswith("closed with code 1006")
    assert gap.lost_at <= reconnecting.received_at
    before, outage, after = split_at(recorder.events(), gap)
    assert outage == [reconnecting]
    assert before and all(event.received_at <= gap.lost_at for event in before)
    assert after and all(event.received_at >= gap.reopened_at for event in after)
    assert client.call.gaps == (gap,) and client.call.gaps[0] is gap
    assert client.call.end_reason is EndReason.ENDED
    assert recorder.of("call_end") == [EndReason.ENDED]


def test_a_phonic_drop_is_one_gap_that_the_next_snapshot_fills(client_for, recorder):
    with Simulator("phonic", "drop") as sim:
        client = client_for(sim)
        client.run()
        assert sim.accepted == 2
    [gap] = recorder.events(Gap)
    check_times(gap)
    assert gap.replayed is True
    assert gap.reason == recorder.events(Reconnecting)[0].reason
    _, _, after = split_at(recorder.events(), gap)
    assert isinstance(after[0], lc.ConversationUpdated), "the snapshot that fills the gap comes next"
    assert client.call.gaps == (gap,)


def test_each_outage_has_its_own_gap_in_order_and_the_call_lists_them(client_for, recorder):
    gaps_at_the_end = []

    class AtTheEnd:
        @lc.hookimpl
        def livecall_call_end(self, call):
            gaps_at_the_end.extend(call.gaps)

    with Simulator("phonic", "drop", drops=3, drop_mode=(1011, "reset", 1012)) as sim:
        client = client_for(sim, plugins=[AtTheEnd()])
        client.run()
        assert sim.accepted == 4
    gaps = recorder.events(Gap)
    assert [gap.reason for gap in gaps] == [r.reason for r in recorder.events(Reconnecting)]
    assert [gap.reason.split(":")[0] for gap in gaps] == [
        "closed with code 1011",
        "closed with code 1006",
        "closed with code 1012",
    ]
    for gap in gaps:
        check_times(gap)
    assert all(earlier.reopened_at <= later.lost_at for earlier, later in zip(gaps, gaps[1:]))
    assert list(client.call.gaps) == gaps and gaps_at_the_end == gaps, "livecall_call_end sees them all"


def test_an_outage_of_several_attempts_is_one_gap_from_its_first_loss(client_for, recorder):
    gate = Gate(refused=lambda number: number in (2, 3))
    with Simulator("hiya", "drop", join_timeout=0.2) as sim, Relay(("127.0.0.1", sim.port), gate) as relay:
        client = client_for(sim, url=f"ws://127.0.0.1:{relay.port}")
        client.run()
        assert sim.accepted == 2 and gate.count == 4
    reconnects = recorder.events(Reconnecting)
    assert [r.attempt for r in reconnects] == [1, 2, 3]
    [gap] = recorder.events(Gap)
    check_times(gap)
    assert gap.reason == reconnects[0].reason and gap.reason.startswith("closed with code 1006")
    assert not reconnects[-1].reason.startswith("closed with code"), (
        "a failed attempt's cause is not the gap's"
    )
    assert gap.lost_at <= reconnects[0].received_at, "from the first loss, not the last failed attempt"
    _, outage, _ = split_at(recorder.events(), gap)
    assert outage == reconnects
    assert client.call.gaps == (gap,)


def test_no_gap_when_the_first_connection_opens_after_failed_attempts(client_for, recorder):
    gate = Gate(refused=lambda number: number in (1, 2))
    with Simulator("phonic") as sim, Relay(("127.0.0.1", sim.port), gate) as relay:
        client = client_for(sim, url=f"ws://127.0.0.1:{relay.port}")
        client.run()
        assert sim.accepted == 1 and gate.count == 3
    assert len(recorder.events(Reconnecting)) == 2
    assert recorder.events(Gap) == [] and client.call.gaps == ()
    assert recorder.events(Transcript), "the call was watched"


def test_no_gap_when_the_watch_gives_up(client_for, recorder):
    gate = Gate(refused=lambda number: number > 1)
    with Simulator("hiya", "drop", join_timeout=0.2) as sim, Relay(("127.0.0.1", sim.port), gate) as relay:
        client = client_for(sim, url=f"ws://127.0.0.1:{relay.port}", max_retries=2)
        with pytest.raises(lc.RetriesExhaustedError):
            client.run()
    assert len(recorder.events(Reconnecting)) == 2
    assert recorder.events(Gap) == [] and client.call.gaps == ()
    assert client.call.end_reason is EndReason.GAVE_UP


def test_no_gap_when_the_watch_is_closed_while_it_waits_to_reconnect(client_for, recorder):
    gate = Gate(refused=lambda number: number > 1)
    with Simulator("phonic", "drop") as sim, Relay(("127.0.0.1", sim.port), gate) as relay:
        client = client_for(
            sim, url=f"ws://127.0.0.1:{relay.port}", backoff=lc.Backoff(0.05, 0.2), max_retries=10_000
        )
        reconnecting = threading.Event()
        client.on(Reconnecting, lambda call, event: reconnecting.set())
        client.start()
        assert reconnecting.wait(30)
        client.close(timeout=30)
        assert client.wait(0)
    assert recorder.events(Gap) == [] and client.call.gaps == ()
    assert client.call.end_reason is EndReason.CLOSED


def test_no_gap_in_a_call_without_a_drop(client_for, recorder):
    with Simulator("phonic") as sim:
        client = client_for(sim)
        client.run()
    assert recorder.events(Gap) == [] and client.call.gaps == ()


def test_a_gap_goes_to_callbacks_and_to_every_plugin_even_after_one_that_raises(client_for, recorder):
    class Broken:
        @lc.hookimpl(tryfirst=True)
        def livecall_event(self, call, event):
            if isinstance(event, Gap):
                raise RuntimeError("this plugin fails on gaps")

    seen = []
    with Simulator("hiya", "drop", join_timeout=0.2) as sim:
        client = client_for(sim, plugins=[Broken()])
        client.on(Gap, lambda call, event: seen.append(event))
        client.run()
    [gap] = recorder.events(Gap)
    assert seen == [gap]
    [failure] = [error for error in recorder.of("error") if isinstance(error, lc.PluginError)]
    assert "this plugin fails on gaps" in str(failure.__cause__)


def test_a_recorded_reconnect_replays_with_its_gap(tmp_path, client_for, recorder):
    path = tmp_path / "call.jsonl"
    with Simulator("phonic", "drop") as sim:
        client = client_for(sim)
        client.record(path)
        client.run()
    assert len(recorder.events(Gap)) == 1
    replayed = Recorder()
    with Replay(path, speed=0) as replay:
        again = lc.PhonicClient(**replay.client_kwargs(), plugins=[replayed], **FAST)
        again.run()
        assert replay.wait_finished(30)
    [gap] = replayed.events(Gap)
    check_times(gap)
    assert gap.replayed is True and gap.reason.startswith("closed with code 1006")
    assert again.call.gaps == (gap,)


# --- what the command line prints ------------------------------------------------------


def test_the_json_lines_carry_the_gap_after_the_reconnect():
    with Simulator("hiya", "drop", join_timeout=0.2) as sim:
        result = livecall(*sim.watch_args("--format", "jsonl"))
    assert result.returncode == 0, result.stderr
    lines = records(result.stdout)
    kinds = [line["event"] for line in lines]
    assert kinds.count("gap") == 1 and kinds[kinds.index("gap") - 1] == "reconnecting"
    gap = lines[kinds.index("gap")]
    assert list(gap) == [
        "event",
        "provider",
        "call_id",
        "received_at",
        "lost_at",
        "reopened_at",
        "reason",
        "replayed",
        "extra",
    ]
    lost_at, reopened_at = datetime.fromisoformat(gap["lost_at"]), datetime.fromisoformat(gap["reopened_at"])
    assert lost_at.tzinfo is not None and lost_at <= reopened_at
    assert gap["received_at"] == gap["reopened_at"]
    assert gap["reason"] == lines[kinds.index("gap") - 1]["reason"]
    assert gap["replayed"] is False and gap["provider"] == "hiya" and gap["extra"] == {}


def test_the_text_transcript_says_when_and_whether_what_was_said_comes_back():
    with Simulator("hiya", "drop", join_timeout=0.2) as sim:
        result = livecall(*sim.watch_args())
    assert result.returncode == 0, result.stderr
    [line] = [line for line in result.stdout.splitlines() if "gap:" in line]
    clock = r"\d\d:\d\d:\d\d"
    expected = (
        rf"{clock}  !!\s+gap: lost {clock}, reopened {clock} "
        r"\(closed with code 1006[^)]*\); Hiya does not resend what was said"
    )
    assert re.fullmatch(expected, line), line


def test_the_text_line_of_a_gap_is_one_escaped_line_whatever_the_reason_holds():
    out = io.StringIO()
    config = lc.Config(argparse.Namespace(format="text"), create_plugin_manager(autoload=False), stdout=out)
    moment = datetime(2025, 7, 30, 23, 45, 3, tzinfo=UTC)
    call = lc.Call(provider="phonic", id="conv_1")
    reason = "closed with code 1011: \x1b[2J\nforged line"
    gap = Gap(lost_at=moment, reopened_at=moment, reason=reason, replayed=True, received_at=moment)
    TextTranscript(config).livecall_event(call, gap)
    [line] = out.getvalue().splitlines()
    assert "\x1b" not in line and "forged line" in line
    assert line.endswith("; Phonic sends what was missed again")
