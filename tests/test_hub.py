"""The process's hub: many calls on a few threads, isolation between calls, TLS, fork, the watchdog."""

import contextlib
import json
import logging
import multiprocessing
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest

import livecall
from livecall import EndReason, Transcript
from livecall._hub.loop import HubOptions, acquire_hub, release_hub
from livecall._hub.mailbox import Mailbox
from livecall._hub.pools import ConnectorPool, DispatcherPool
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator
from livecall.testing._wire import RawServer

from .conftest import FAST, Recorder

CALLS = 30


def _hub_threads(prefix="livecall-hub"):
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def _mailbox(pool, handle, name="", limit=10):
    """A call's mailbox on ``pool``, as the hub makes one; ``name`` is what the watchdog reports."""
    return Mailbox(limit, 1000 * limit, pool.schedule, handle, lambda: None, lambda: name)


def _eventually(predicate, timeout=10.0):
    """Whether ``predicate()`` comes true within ``timeout`` seconds, looking every 20 ms."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        threading.Event().wait(0.02)
    return True


def _phonic(sim, **kwargs):
    options = dict(sim.client_kwargs(), plugin_manager=create_plugin_manager(autoload=False), **FAST)
    options.update(kwargs)
    return livecall.PhonicClient(**options)


def test_many_calls_from_one_thread_share_a_few_threads():
    recorders = [Recorder() for _ in range(CALLS)]
    with contextlib.ExitStack() as stack:
        # One simulator per call: a simulated conversation has one watcher at a time.
        sims = [stack.enter_context(Simulator("phonic", "conversation")) for _ in range(CALLS)]
        clients = []
        for sim, recorder in zip(sims, recorders):
            client = _phonic(sim, plugins=[recorder], plugin_manager=None)
            client.start(wait=False)
            clients.append(client)
        threads = len(_hub_threads())
        assert livecall.wait_all(clients, timeout=60)
    assert threads <= 16, "the calls share the hub's threads"
    assert [c.call.end_reason for c in clients] == [EndReason.ENDED] * CALLS
    lines = [[line.text for line in r.events(Transcript)] for r in recorders]
    assert len(lines[0]) == 6, "the whole conversation"
    assert all(said == lines[0] for said in lines), "every call saw every line, in order"


def test_wait_any_returns_the_watches_that_are_over():
    with Simulator("phonic", "conversation") as quick, Simulator("phonic", "conversation", pace=5) as slow:
        done, busy = _phonic(quick), _phonic(slow)
        for client in (busy, done):
            client.start(wait=False)
        assert livecall.wait_any([busy, done], timeout=30) == [done]
        assert livecall.wait_any([busy], timeout=0.05) == []
        assert not livecall.wait_all([busy, done], timeout=0.05)
        busy.close()
        assert livecall.wait_all([busy, done], timeout=5)
    assert busy.call.end_reason is EndReason.CLOSED


def test_start_without_waiting_reports_errors_through_wait():
    with Simulator("phonic", "conversation") as sim:
        client = _phonic(sim, api_key="wrong-key-value")
        client.start(wait=False)
        with pytest.raises(livecall.AuthenticationError):
            client.wait(10)


def test_a_hook_that_blocks_raises_or_closes_costs_only_its_own_call():
    release = threading.Event()

    def misbehave(call, line):
        release.wait(10)
        client.close()
        raise RuntimeError("this callback is broken")

    with contextlib.ExitStack() as stack:
        stuck_sim = stack.enter_context(Simulator("phonic", "conversation", pace=1))
        client = _phonic(stuck_sim)
        client.on(Transcript, misbehave)
        others = [_phonic(stack.enter_context(Simulator("phonic", "conversation"))) for _ in range(4)]
        said = {id(other): [] for other in others}
        for other in others:
            other.on(Transcript, lambda call, line, other=other: said[id(other)].append(line.text))
        client.start()
        for other in others:
            other.start(wait=False)
        assert livecall.wait_all(others, timeout=30), "the others end while one hook blocks"
        release.set()
        assert client.wait(10)
    assert client.call.end_reason is EndReason.CLOSED
    assert all(o.call.end_reason is EndReason.ENDED for o in others)
    assert all(lines and lines == said[id(others[0])] for lines in said.values())


def test_hub_stops_with_its_last_call_and_starts_again():
    with Simulator("phonic", "conversation") as sim:
        first = _phonic(sim)
        first.run()
        threads = _hub_threads()
        for thread in threads:
            thread.join(5)
        assert not [t.name for t in threads if t.is_alive()]
        second = _phonic(sim)
        second.run()
    assert second.call.end_reason is EndReason.ENDED


def _watch_in_child(kwargs, result):
    client = livecall.PhonicClient(**kwargs, plugin_manager=create_plugin_manager(autoload=False))
    client.run()
    result.put(client.call.end_reason.value)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork()")
def test_a_forked_child_gets_a_hub_of_its_own():
    context = multiprocessing.get_context("fork")
    result = context.Queue()
    with Simulator("phonic", "conversation", pace=0.2) as sim:
        parent = _phonic(sim)
        parent.start()  # the parent's hub runs while the child is forked
        child = context.Process(target=_watch_in_child, args=(sim.client_kwargs(), result))
        child.start()
        assert result.get(timeout=60) == "ended"
        child.join(10)
        parent.close()
    assert child.exitcode == 0


def test_a_tls_flood_through_a_small_mailbox_loses_nothing(tls_front, certificate, recorder):
    context = ssl.create_default_context(cafile=str(certificate[0]))
    with Simulator("hiya", "flood", flood_count=3000) as sim:
        options = dict(sim.client_kwargs(), url=tls_front(sim), ssl_context=context, queue_size=8)
        client = livecall.HiyaClient(**options, plugins=[recorder], **FAST)
        client.run()
    said = [line.text for line in recorder.events(Transcript)]
    assert said == [f"flood message {n}" for n in range(1, 3001)]
    assert client.stats.queue_high_water >= 8, "the mailbox filled, so reading paused and resumed"
    assert client.call.end_reason is EndReason.ENDED


def test_the_watchdog_names_a_stuck_hook_and_grows_the_pool(caplog):
    pool = DispatcherPool(1, 2, 2, stuck_after=0.01, name="test-pool")
    entered, release, ran = threading.Event(), threading.Event(), threading.Event()

    def stuck(item):
        entered.set()
        release.wait(10)

    blocked = _mailbox(pool, stuck, "call phonic:stuck, plugin slowpoke")
    waiting = _mailbox(pool, lambda item: ran.set(), "call phonic:waiting")
    try:
        blocked.put("x")
        assert entered.wait(5)
        waiting.put("y")
        with caplog.at_level(logging.WARNING, logger="livecall.hub"):
            pool.check(float("inf"))
        assert "plugin slowpoke" in caplog.text and "call phonic:stuck" in caplog.text
        assert pool.size == 2
        assert ran.wait(5), "the new dispatcher runs the call that waited"
    finally:
        release.set()
        pool.stop()


def test_every_item_runs_once_and_in_order_while_dispatchers_park_and_wake():
    pool = DispatcherPool(2, 2, 2, stuck_after=60, name="test-order")
    done = threading.Event()
    seen = {n: [] for n in range(200)}
    remaining = [200 * 50]

    def handler(n):
        def handle(item):
            seen[n].append(item)
            remaining[0] -= 1  # one dispatcher per mailbox at a time; the GIL keeps the count whole
            if not remaining[0]:
                done.set()

        return handle

    boxes = [_mailbox(pool, handler(n), limit=100) for n in range(200)]
    try:
        for item in range(50):  # a mailbox that empties is handed over again: many park and wake turns
            for box in boxes:
                box.put(item)
        assert done.wait(30), "a mailbox was left in the line with every dispatcher asleep"
        assert all(items == list(range(50)) for items in seen.values())
    finally:
        pool.stop()


def test_a_mailbox_behind_a_stuck_hook_gets_the_parked_dispatcher_on_a_nudge():
    pool = DispatcherPool(2, 2, 2, stuck_after=60, name="test-nudge")
    entered, release, ran = threading.Event(), threading.Event(), threading.Event()
    stuck_when_it_ran = []

    def stuck(item):
        entered.set()
        release.wait(30)

    def run(item):
        stuck_when_it_ran.append(not release.is_set())
        ran.set()

    blocked = _mailbox(pool, stuck, "stuck")
    waiting = _mailbox(pool, run, "waiting")
    try:
        # Handed over together: the second finds a dispatcher already on its way and wakes
        # nobody, and that dispatcher takes the first and sticks.
        blocked.put("x")
        waiting.put("y")
        assert entered.wait(5)
        for _ in range(100):  # what the I/O thread does once a turn
            pool.nudge()
            if ran.wait(0.05):
                break
    finally:
        release.set()
        pool.stop()
    assert stuck_when_it_ran == [True], "the call that waited ran on the other dispatcher, the hook stuck"


def test_stopping_the_pool_ends_its_parked_dispatchers():
    pool = DispatcherPool(3, 3, 3, stuck_after=60, name="test-stop")
    threads = _hub_threads("test-stop-dispatcher-")
    assert len(threads) == 3
    pool.stop()
    for thread in threads:
        thread.join(5)
    assert not [t.name for t in threads if t.is_alive()]


@pytest.mark.parametrize("window", [-0.001, 1.5])
def test_a_batch_window_out_of_range_is_refused(window):
    with pytest.raises(livecall.ConfigurationError, match="batch_window"):
        livecall.configure_hub(batch_window=window)


@pytest.mark.parametrize(
    "options, named",
    [
        (dict(max_dispatchers=16, dispatcher_cap=8), "dispatcher_cap"),
        (dict(connectors=8, max_connectors=4), "max_connectors"),
        (dict(dispatcher_cap=0), "dispatcher_cap"),
        (dict(max_connectors=0), "max_connectors"),
    ],
)
def test_thread_caps_below_what_they_cap_are_refused(options, named):
    with pytest.raises(livecall.ConfigurationError, match=named):
        livecall.configure_hub(**options)


# --- timers --------------------------------------------------------------------------


@pytest.mark.parametrize("when", [float("nan"), float("inf"), float("-inf")])
def test_a_deadline_that_is_not_a_finite_number_is_refused_and_every_other_timer_runs(when):
    """A NaN on the heap compares neither less nor more than anything: no timer would run again."""
    refused, ran = [], threading.Event()

    def on_io_thread():
        for schedule in (hub.call_at, hub.call_later):
            try:
                schedule(when, lambda: None)
            except ValueError as error:
                refused.append(str(error))
        hub.call_later(0.0, ran.set)

    hub = acquire_hub()
    try:
        hub.call_soon(on_io_thread)
        assert ran.wait(5), "a timer due now ran"
    finally:
        release_hub(hub)
    assert len(refused) == 2 and all("finite" in message for message in refused)


def test_hub_turn_age_shows_a_wedged_io_thread():
    inside, release, turned = threading.Event(), threading.Event(), threading.Event()

    def wedge():
        inside.set()
        release.wait(30)

    hub = acquire_hub()
    try:
        assert livecall.hub_turn_age() is not None
        assert _eventually(lambda: livecall.hub_turn_age() < 1.5), "an idle hub turns now and then"
        hub.call_soon(wedge)
        assert inside.wait(5)
        assert _eventually(lambda: livecall.hub_turn_age() > 1.5), "a wedged hub's turn age grows"
        release.set()
        hub.call_soon(turned.set)
        assert turned.wait(5)
        assert _eventually(lambda: livecall.hub_turn_age() < 1.5), "the age falls once it turns again"
    finally:
        release.set()
        release_hub(hub)
    assert livecall.hub_turn_age() is None, "no hub, no age"


# --- connectors ----------------------------------------------------------------------


def test_a_reconnect_goes_ahead_of_new_handshakes_that_wait():
    pool = ConnectorPool(1, 1, "test-connectors")
    busy, release, done = threading.Event(), threading.Event(), threading.Event()
    order = []
    pool.submit(lambda: (busy.set(), release.wait(10)))
    assert busy.wait(5)
    pool.submit(lambda: order.append("new"))
    pool.submit(lambda: order.append("reconnect"), reconnect=True)
    pool.submit(done.set)
    release.set()
    assert done.wait(5)
    pool.stop()
    assert order == ["reconnect", "new"]


def test_a_reconnect_is_not_held_up_by_handshakes_to_hosts_that_never_answer():
    """Twice as many mute hosts as connector threads: the streaming call still comes back at once."""
    mute_hosts = 2 * HubOptions().connectors
    cut, back, over = threading.Event(), threading.Event(), threading.Event()
    plays = []

    def play(peer):
        plays.append(peer)
        if len(plays) == 1:
            cut.wait(30)  # then the connection ends without a close frame: the call reconnects
            return
        back.set()
        over.wait(30)

    server = RawServer(play)
    listeners = [socket.create_server(("127.0.0.1", 0)) for _ in range(mute_hosts)]
    options = dict(plugin_manager=create_plugin_manager(autoload=False), **FAST)
    streaming = livecall.PhonicClient(
        "conv_streaming", api_key="streaming-key-5c1d", url=server.url, **options
    )
    mute = [
        livecall.PhonicClient(
            f"conv_mute_{n}",
            api_key="mute-key-5c1d",
            url=f"ws://127.0.0.1:{listener.getsockname()[1]}",
            connect_timeout=120.0,
            **options,
        )
        for n, listener in enumerate(listeners)
    ]
    accepted = []
    try:
        streaming.start(timeout=10)
        for client in mute:
            client.start(wait=False)
        for listener in listeners[: HubOptions().connectors]:  # every connector thread waits on one
            listener.settimeout(10)
            connection, _ = listener.accept()
            accepted.append(connection)
            connection.recv(4096)
        cut.set()
        assert back.wait(20), "the call that was streaming reconnected while the mute hosts held on"
    finally:
        cut.set()
        over.set()
        for client in [*mute, streaming]:
            client.close(5)
        for sock in [*accepted, *listeners]:
            sock.close()
        server.stop()
    assert all(client.finished for client in [*mute, streaming])


# --- the watchdog past stuck hooks -----------------------------------------------------


STUCK_CALLS_CHILD = """
import json, logging, sys, threading, livecall
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
livecall.configure_hub(dispatchers=1, max_dispatchers=2, stuck_after=0.2)
*stuck_kwargs, other_kwargs = [json.loads(argument) for argument in sys.argv[1:]]
release = threading.Event()

class Slowpoke:
    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        release.wait(20)

stuck = [livecall.PhonicClient(**kwargs, plugins=[Slowpoke()]) for kwargs in stuck_kwargs]
other = livecall.PhonicClient(**other_kwargs, plugins=[])
for client in stuck:
    client.start()
other.start()
ended = other.wait(15)  # only a dispatcher added by the watchdog can run it
release.set()
for client in stuck:
    client.close()
print(json.dumps({"other_ended": ended, "reason": str(other.call.end_reason)}))
"""


@pytest.mark.parametrize("stuck_calls", [1, 2], ids=["one stuck hook", "as many as max_dispatchers"])
def test_the_watchdog_lets_other_calls_go_on_past_stuck_hooks(stuck_calls):
    names = [f"stuck_{n}" for n in range(stuck_calls)] + ["other"]
    with contextlib.ExitStack() as stack:
        sims = [
            stack.enter_context(Simulator("phonic", "conversation", conversation_id=f"conv_{name}", pace=0.2))
            for name in names
        ]
        child = subprocess.run(
            [sys.executable, "-c", STUCK_CALLS_CHILD, *[json.dumps(sim.client_kwargs()) for sim in sims]],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert child.returncode == 0, child.stderr
    assert json.loads(child.stdout) == {"other_ended": True, "reason": "ended"}
    assert "livecall.hub a dispatcher has been stuck" in child.stderr
    assert "call phonic:conv_stuck_0" in child.stderr and "plugin " in child.stderr
    assert f"dispatcher pool grown to {1 + stuck_calls} threads" in child.stderr


def test_the_watchdog_says_once_that_the_pool_is_at_its_cap_and_shrinks_after(caplog):
    pool = DispatcherPool(1, 1, 2, stuck_after=0.01, name="test-cap")
    entered = {name: threading.Event() for name in ("slowpoke-1", "slowpoke-2", "slowpoke-3")}
    release, ran = threading.Event(), threading.Event()

    def stuck(name):
        def handle(item):
            entered[name].set()
            release.wait(10)

        return handle

    boxes = [_mailbox(pool, stuck(name), f"call phonic:{name}, plugin {name}") for name in entered]
    waiting = _mailbox(pool, lambda item: ran.set(), "call phonic:waiting")
    try:
        with caplog.at_level(logging.WARNING, logger="livecall.hub"):
            boxes[0].put("x")
            assert entered["slowpoke-1"].wait(5)
            for box in [*boxes[1:], waiting]:
                box.put("x")
            pool.check(float("inf"))
            assert entered["slowpoke-2"].wait(5), "a thread was added past the stuck one"
            for _ in range(3):
                pool.check(float("inf"))
        errors = [record for record in caplog.records if record.levelno == logging.ERROR]
        assert len(errors) == 1, "said once"
        assert "cap of 2 threads" in errors[0].getMessage()
        assert "plugin slowpoke-1" in errors[0].getMessage() and "plugin slowpoke-2" in errors[0].getMessage()
        assert pool.size == 2, "never past the cap"
        release.set()
        assert ran.wait(5), "the call that waited runs once a hook returns"
        assert _eventually(lambda: (pool.check(time.monotonic()), pool.size)[1] == 1), "back to max_size"
    finally:
        release.set()
        pool.stop()
