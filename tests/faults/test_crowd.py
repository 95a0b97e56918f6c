"""The drop campaign on a busy hub: one call cut twenty times while hundreds of others stream.

The hub's I/O thread, timers and dispatchers are shared by every call; a call
cut and reconnecting again and again must lose nothing and cost the others
nothing.  The crowd, 500 calls, comes from the benchmarks' server in a
process of its own, and is still streaming when the cut call has ended: one
of its calls is held to that, by events, whatever the machine's load.
"""

import threading

import pytest

import livecall
from benchmarks._server import Script, ServerProcess
from benchmarks.concurrency import Tracker
from benchmarks.throughput import hiya_client
from livecall import ConversationEnded, EndReason, Transcript
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator

TURNS = 200
CUTS = 20
MODES = ("reset", 1001, 1011, 1012)
CROWD = 500
CROWD_LINES = 60
#: How long a gate waits for the other call before the test fails.
GATE_TIMEOUT = 120.0


class Gate:
    """One call of the crowd, tied to the cut call by events rather than by time.

    Its middle transcript waits for the cut call to start, and is noted
    before the cut call may end; its last waits for the cut call to end.
    So crowd events arrive during the cuts, and the crowd is not over before
    the cut call is, however slowly either runs.
    """

    def __init__(self, tracker: Tracker) -> None:
        self.tracker = tracker
        self.cut_started = threading.Event()
        self.cut_ended = threading.Event()
        self.seen_during_cuts = threading.Event()
        self.timed_out = False
        self._lines = 0

    @livecall.hookimpl
    def livecall_transcript(self, call: livecall.Call, transcript: Transcript) -> None:
        self._lines += 1
        if self._lines == CROWD_LINES // 2:
            self.wait(self.cut_started)
        elif self._lines == CROWD_LINES:
            self.wait(self.cut_ended)
        self.tracker.note(call.id, transcript.text, transcript.offset or 0.0)
        if self._lines == CROWD_LINES // 2:
            self.seen_during_cuts.set()

    def wait(self, event: threading.Event) -> None:
        if not event.wait(GATE_TIMEOUT):
            self.timed_out = True


@pytest.mark.parametrize("seed", [1, 2])
def test_twenty_cuts_of_one_call_while_a_crowd_streams(client_for, recorder, figures, seed):
    tracker = Tracker()
    crowd_plugins = create_plugin_manager(autoload=False)
    crowd_plugins.register(tracker)
    script = Script(count=CROWD_LINES, burst=False, rate=10.0, connections=CROWD)
    gate = Gate(tracker)
    gated_plugins = create_plugin_manager(autoload=False)
    gated_plugins.register(gate)
    with ServerProcess(script) as server:
        crowd = [hiya_client(server.url, plugin_manager=crowd_plugins) for _ in range(CROWD - 1)]
        crowd.append(hiya_client(server.url, plugin_manager=gated_plugins))
        for client in crowd:
            client.start(wait=False)
        with Simulator("phonic", "long+drop", drops=CUTS, drop_mode=MODES, seed=seed, lose=1) as sim:
            client = client_for(sim, max_retries=2, stable_after=0.0)
            client.on(ConversationEnded, lambda call, event: gate.wait(gate.seen_during_cuts))
            before = len(tracker.ms)
            gate.cut_started.set()
            try:
                client.run()
                during = len(tracker.ms) - before
            finally:
                gate.cut_started.set()
                gate.cut_ended.set()
        assert livecall.wait_all(crowd, timeout=60), "the crowd ends"
    assert not gate.timed_out, "the cut call and the crowd ran side by side"
    lines = [(line.item_idx, line.text) for line in recorder.events(Transcript)]
    figures(
        events_sent=TURNS + CROWD * CROWD_LINES,
        events_received=len(lines) + len(tracker.ms),
        events_lost=TURNS - len(set(lines)) + CROWD * CROWD_LINES - len(tracker.ms),
        faults_injected=CUTS,
    )
    assert [idx for idx, _ in lines] == list(range(TURNS)), "each turn once, in order"
    assert isinstance(recorder.events()[-1], ConversationEnded)
    assert client.call.end_reason is EndReason.ENDED
    assert len(tracker.ms) == CROWD * CROWD_LINES and tracker.reordered == 0, "the crowd lost nothing"
    assert 0 < during and before + during < CROWD * CROWD_LINES, "the crowd streamed throughout the cuts"
    assert {c.call.end_reason for c in crowd} == {EndReason.ENDED}
