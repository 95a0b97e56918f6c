"""The process's hub: many calls on a few threads, isolation between calls, TLS, fork, the watchdog."""

import contextlib
import json
import logging
import multiprocessing
import ssl
import subprocess
import sys
import threading

import pytest

import livecall
from livecall import EndReason, Transcript
from livecall._hub.mailbox import Mailbox
from livecall._hub.pools import DispatcherPool
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator

from .conftest import FAST, Recorder

CALLS = 30


def _hub_threads(prefix="livecall-hub"):
    return [t for t in threading.enumerate() if t.name.startswith(prefix)]


def _mailbox(pool, handle, name="", limit=10):
    """A call's mailbox on ``pool``, as the hub makes one; ``name`` is what the watchdog reports."""
    return Mailbox(limit, 1000 * limit, pool.schedule, handle, lambda: None, lambda: name)


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
    pool = DispatcherPool(1, 2, stuck_after=0.01, name="test-pool")
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
    pool = DispatcherPool(2, 2, stuck_after=60, name="test-order")
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
    pool = DispatcherPool(2, 2, stuck_after=60, name="test-nudge")
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
    pool = DispatcherPool(3, 3, stuck_after=60, name="test-stop")
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


WATCHDOG_CHILD = """
import json, logging, sys, threading, livecall
logging.basicConfig(level=logging.WARNING, format="%(name)s %(message)s")
livecall.configure_hub(dispatchers=1, max_dispatchers=2, stuck_after=0.2)
stuck_kwargs, other_kwargs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
release = threading.Event()

class Slowpoke:
    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        release.wait(20)

stuck = livecall.PhonicClient(**stuck_kwargs, plugins=[Slowpoke()])
other = livecall.PhonicClient(**other_kwargs, plugins=[])
stuck.start()
other.start()
ended = other.wait(15)  # only a dispatcher added by the watchdog can run it
release.set()
stuck.close()
print(json.dumps({"other_ended": ended, "reason": str(other.call.end_reason)}))
"""


def test_the_watchdog_lets_other_calls_go_on_past_a_stuck_hook():
    with Simulator("phonic", "conversation", conversation_id="conv_stuck", pace=0.2) as stuck:
        with Simulator("phonic", "conversation", conversation_id="conv_other", pace=0.2) as other:
            child = subprocess.run(
                [
                    sys.executable,
                    "-c",
                    WATCHDOG_CHILD,
                    json.dumps(stuck.client_kwargs()),
                    json.dumps(other.client_kwargs()),
                ],
                capture_output=True,
                text=True,
                timeout=60,
            )
    assert child.returncode == 0, child.stderr
    result = json.loads(child.stdout)
    assert result == {"other_ended": True, "reason": "ended"}
    assert "livecall.hub a dispatcher has been stuck" in child.stderr
    assert "call phonic:conv_stuck" in child.stderr and "plugin " in child.stderr
    assert "dispatcher pool grown to 2 threads" in child.stderr
