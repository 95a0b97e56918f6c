"""The drop campaign on a busy hub: one call cut twenty times while hundreds of others stream.

The hub's I/O thread, timers and dispatchers are shared by every call; a call
cut and reconnecting again and again must lose nothing and cost the others
nothing.  The crowd, 500 calls, comes from the benchmarks' server in a
process of its own, and is still streaming when the cut call has ended.
"""

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
CROWD_LINES = 60  # at 10 a second: longer than the cuts take


@pytest.mark.parametrize("seed", [1, 2])
def test_twenty_cuts_of_one_call_while_a_crowd_streams(client_for, recorder, figures, seed):
    tracker = Tracker()
    crowd_plugins = create_plugin_manager(autoload=False)
    crowd_plugins.register(tracker)
    script = Script(count=CROWD_LINES, burst=False, rate=10.0, connections=CROWD)
    with ServerProcess(script) as server:
        crowd = [hiya_client(server.url, plugin_manager=crowd_plugins) for _ in range(CROWD)]
        for client in crowd:
            client.start(wait=False)
        with Simulator("phonic", "long+drop", drops=CUTS, drop_mode=MODES, seed=seed, lose=1) as sim:
            client = client_for(sim, max_retries=2, stable_after=0.0)
            before = len(tracker.ms)
            client.run()
            during = len(tracker.ms) - before
        assert livecall.wait_all(crowd, timeout=60), "the crowd ends"
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
