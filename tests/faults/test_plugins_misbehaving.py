"""Plugins that block, raise, or close the client from a hook: the others lose nothing.

A small queue makes the reader wait on the dispatcher, so a plugin's stall
reaches the socket, as it would on a busy call.
"""

import json
import subprocess
import sys
import threading
from pathlib import Path

import livecall
from livecall import EndReason, PluginError, Transcript
from livecall.testing import Simulator

FLOOD = 2000
BLOCK = 1.5
FAST = dict(ping_interval=0.2, ping_timeout=0.3, queue_size=8, backoff=livecall.Backoff(0.01, 0.05))
#: Seconds before a watch or a process that should end is declared hung: a guard, not a speed target.
HANG_GUARD = 30.0
#: A close timeout far beyond the hang guard: a close() that ran into it fails the guard.
NEVER = 120.0


def flood_lines(count):
    return [f"flood message {n}" for n in range(1, count + 1)]


class Blocking:
    """Stalls the dispatcher for ``seconds`` on the first transcript; counts the stalls."""

    def __init__(self, seconds):
        self.seconds = seconds
        self.stalls = 0

    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        if transcript.text == "flood message 1":
            self.stalls += 1
            threading.Event().wait(self.seconds)  # the fault itself, not a synchronisation


class Raising:
    """Raises from every hook of a call, its error handler included, and counts the calls."""

    def __init__(self):
        self.calls = 0

    def _fail(self):
        self.calls += 1
        raise RuntimeError("this plugin is broken")

    livecall_call_start = livecall.hookimpl(lambda self, call: self._fail())
    livecall_event = livecall.hookimpl(lambda self, call, event: self._fail())
    livecall_transcript = livecall.hookimpl(lambda self, call, transcript: self._fail())
    livecall_reconnect = livecall.hookimpl(lambda self, call, reconnecting: self._fail())
    livecall_call_end = livecall.hookimpl(lambda self, call, reason: self._fail())

    @livecall.hookimpl
    def livecall_error(self, call, error):
        raise RuntimeError("and its error handler too")


class Closing:
    """Closes the client from inside ``livecall_transcript`` at the ``at``-th line.

    ``returned`` is set once that close() is back, and ``watching_then`` says
    whether the watch was still on at that moment: from the dispatcher's own
    thread close() cannot wait for the watch to end, as that thread is the watch.
    """

    def __init__(self, at):
        self.at = at
        self.seen = 0
        self.client = None
        self.returned = threading.Event()
        self.watching_then = None

    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        self.seen += 1
        if self.seen == self.at:
            self.client.close()
            self.watching_then = not self.client.wait(0)
            self.returned.set()


def test_a_plugin_that_blocks_for_seconds_delays_but_costs_the_others_nothing(
    client_for, plugin_manager, recorder, figures
):
    blocking = Blocking(BLOCK)
    plugin_manager.register(blocking, name="blocking")
    with Simulator("hiya", "flood", flood_count=FLOOD) as sim:
        client = client_for(sim, **FAST)
        client.start()
        assert client.wait(HANG_GUARD), "the watch outlived the stall"
        connections = len(sim.connections)
    said = [line.text for line in recorder.events(Transcript)]
    figures(events_sent=FLOOD, events_received=len(said), events_lost=FLOOD - len(said), faults_injected=1)
    assert said == flood_lines(FLOOD)
    assert connections == 1, "a stalled dispatcher is not a dead peer"
    assert client.call.end_reason is EndReason.ENDED
    assert blocking.stalls == 1, "the stall happened once, and the watch went on after it"


def test_a_plugin_that_raises_on_every_call_costs_the_others_nothing(
    client_for, plugin_manager, recorder, figures
):
    raising = Raising()
    plugin_manager.register(raising, name="raising")
    # Clean closes: a TCP reset throws away frames in flight, which would hide a loss.
    with Simulator("hiya", "flood+drop", flood_count=300, drops=2, drop_mode=(1001, 1012), lose=0) as sim:
        client = client_for(sim, **FAST)
        client.run()
    said = [line.text for line in recorder.events(Transcript)]
    failures = [error for error in recorder.of("error") if isinstance(error, PluginError)]
    figures(
        events_sent=300, events_received=len(said), events_lost=300 - len(said), faults_injected=raising.calls
    )
    assert said == flood_lines(300)
    assert len(recorder.of("reconnect")) == 2 and recorder.of("call_end") == [EndReason.ENDED]
    # Every failure is reported to the others, call_end's included, though it is the last hook.
    assert len(failures) == raising.calls and {error.plugin for error in failures} == {"raising"}
    assert {error.hook for error in failures} == {
        "livecall_call_start",
        "livecall_event",
        "livecall_transcript",
        "livecall_reconnect",
        "livecall_call_end",
    }


def test_a_plugin_that_closes_the_client_from_a_hook_does_not_wait_on_itself(
    client_for, plugin_manager, recorder, figures
):
    closing = Closing(at=3)
    plugin_manager.register(closing, name="closing")
    # Long enough that the server is still sending when the close comes, so the call does not end first.
    with Simulator("hiya", "flood", flood_count=10 * FLOOD) as sim:
        # A close() that waited on its own thread would sit out the close timeout: NEVER trips the guard.
        client = closing.client = client_for(sim, **dict(FAST, close_timeout=NEVER))
        client.start()
        assert closing.returned.wait(HANG_GUARD), "close() from the hook did not return"
        assert client.wait(HANG_GUARD)
        record = sim.wait_for(lambda: sim.connections[0].closed and sim.connections[0])
    sent = [json.loads(frame)["msg"] for frame in record.sent if '"transcript"' in frame]
    said = [line.text for line in recorder.events(Transcript)]
    figures(
        events_sent=len(sent), events_received=len(said), events_lost=len(sent) - len(said), faults_injected=1
    )
    assert closing.watching_then, "close() from the hook returned before the watch was over"
    assert said == sent, "what came before the close reply is delivered, in order"
    assert record.client_close_code == 1000
    assert recorder.of("call_end") == [EndReason.CLOSED]


CHILD = """
import json, sys, livecall
sys.path.insert(0, sys.argv[2])
from test_plugins_misbehaving import Blocking, Closing, Raising
closing = Closing(at=50)
lines = []
client = livecall.HiyaClient(
    **json.loads(sys.argv[1]), plugins=[Blocking(1.0), Raising(), closing],
    queue_size=8, close_timeout=float(sys.argv[3]),
)
closing.client = client
client.on(livecall.Transcript, lambda call, line: lines.append(line.text))
client.run()
print(json.dumps({"lines": lines, "reason": str(client.call.end_reason)}))
"""


def test_the_process_exits_on_time_whatever_its_plugins_do(figures):
    # With a close timeout beyond the guard, a process that waited for it, or for
    # a thread that never ends, is killed by the guard and fails the test.
    with Simulator("hiya", "flood", flood_count=FLOOD) as sim:
        arguments = [json.dumps(sim.client_kwargs()), str(Path(__file__).parent), str(NEVER)]
        child = subprocess.run(
            [sys.executable, "-c", CHILD, *arguments],
            capture_output=True,
            text=True,
            timeout=HANG_GUARD,
        )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    figures(
        events_sent=len(result["lines"]),
        events_received=len(result["lines"]),
        events_lost=0,
        faults_injected=3,
    )
    # Closed, or ended: while the first line blocked, the whole call may have reached the socket.
    assert result["reason"] in ("closed", "ended")
    assert result["lines"] == flood_lines(len(result["lines"])) and len(result["lines"]) >= 50
