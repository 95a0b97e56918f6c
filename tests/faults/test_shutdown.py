"""``close()`` at awkward moments returns without sitting out any timeout, and the watch is then over.

Every timeout the client could sit out (the close timeout, the connect
timeout, the backoff) is set far beyond the hang guard, so a close() that
waited for one of them fails the guard instead of passing a bit late; how
fast close() really is belongs to the benchmarks, not to these tests.

Each moment (connecting, backing off, while a hook runs, from two threads at
once) is repeated fifty times, at points drawn from a seeded generator, so a
failure names its repetition and replays exactly.
"""

import random
import socket
import threading

import pytest

import livecall
from livecall import EndReason, Reconnecting, Transcript
from livecall.plugins import create_plugin_manager
from livecall.testing import Simulator

SEED = 20250730
REPETITIONS = 50
#: Longer than the hang guard of the ``returns`` fixture: any timeout the client sat out would trip it.
NEVER = 120.0
#: How long a stuck hook or an ending watch may take before the test calls it hung.
HANG_GUARD = 30.0


def _client(cls, **kwargs):
    options = dict(
        close_timeout=NEVER,
        ping_interval=0.5,
        ping_timeout=0.5,
        plugin_manager=create_plugin_manager(autoload=False),
    )
    options.update(kwargs)
    return cls(**options)


def close_while_connecting(rng, clients, returns):
    """The server took the TCP connection and reads the upgrade request, but never answers it."""
    with socket.create_server(("127.0.0.1", 0)) as mute:
        url = f"ws://127.0.0.1:{mute.getsockname()[1]}"
        client = _client(
            livecall.PhonicClient,
            conversation_id="conv_mute",
            api_key="mute-key-3a9e",
            url=url,
            connect_timeout=NEVER,
        )
        clients.append(client)
        threading.Thread(target=client.start, daemon=True).start()
        connection, _ = mute.accept()
        with connection:
            connection.recv(4096)  # the request is in: the client waits for the answer
            threading.Event().wait(rng.uniform(0, 0.02))
            returns(client.close)


def close_while_backing_off(rng, clients, returns):
    backing_off = threading.Event()
    with socket.socket() as refusing:
        refusing.bind(("127.0.0.1", 0))  # bound, not listening: connections are refused
        url = f"ws://127.0.0.1:{refusing.getsockname()[1]}"
        client = _client(
            livecall.PhonicClient,
            conversation_id="conv_refused",
            api_key="refused-key-3a9e",
            url=url,
            backoff=livecall.Backoff(NEVER, NEVER),
        )
        clients.append(client)
        client.on(Reconnecting, lambda call, event: backing_off.set())
        threading.Thread(target=client.start, daemon=True).start()  # start() waits to be connected
        assert backing_off.wait(5)
        threading.Event().wait(rng.uniform(0, 0.02))
        returns(client.close)


def _held_flood_watch(sim, clients, at, hold):
    """A watch of a flood whose dispatcher runs ``hold()`` at message ``at``."""
    client = _client(livecall.HiyaClient, **sim.client_kwargs())
    clients.append(client)
    client.on(Transcript, lambda call, line: line.text == f"flood message {at}" and hold())
    client.start()
    return client


def close_while_a_hook_runs(rng, clients, returns):
    """A hook is stuck when close() comes; it returns at a random moment, or only after close() gave up."""
    entered, release = threading.Event(), threading.Event()
    at = rng.randint(1, 20)
    with Simulator("hiya", "flood", flood_count=5000) as sim:

        def stuck():
            entered.set()
            release.wait(HANG_GUARD)

        client = _held_flood_watch(sim, clients, at, stuck)
        assert entered.wait(5)
        if rng.random() < 0.3:
            # close(timeout=...) gives up on a hook that outlasts it: the hook is released
            # only once close() is back, so a close() that waited for it would hang.
            returns(client.close, timeout=0.1)
            assert not client.wait(0), "close() returned while the hook was still stuck"
            release.set()
            assert client.wait(HANG_GUARD), "the watch ends once the hook returns"
            return
        # The hook returns a random moment after close() has begun, never before: a hook
        # released first would let the flood's callEnd end the call on a busy machine.
        closed = lambda: sim.connections[0].closed  # noqa: E731
        later = rng.uniform(0, 0.05)
        threading.Timer(later, lambda: sim.wait_for(closed, timeout=HANG_GUARD) and release.set()).start()
        returns(client.close)


def close_from_two_threads(rng, clients, returns):
    reading = threading.Event()
    at = rng.randint(1, 50)
    with Simulator("hiya", "flood", flood_count=5000) as sim:

        def hold():
            # Hold the rest of the flood (and its callEnd) until the closes are through:
            # on a busy machine the call would otherwise end by itself first.
            reading.set()
            sim.wait_for(lambda: sim.connections[0].closed, timeout=HANG_GUARD)

        client = _held_flood_watch(sim, clients, at, hold)
        assert reading.wait(5)
        both = threading.Barrier(2)
        returned = []

        def close():
            both.wait()
            returns(client.close)
            returned.append(True)

        other = threading.Thread(target=close)
        other.start()
        close()
        other.join(HANG_GUARD)
        assert len(returned) == 2, "both close() calls returned"
        record = sim.wait_for(lambda: sim.connections[0].closed and sim.connections[0])
        assert record.client_close_code == 1000


MOMENTS = [close_while_connecting, close_while_backing_off, close_while_a_hook_runs, close_from_two_threads]


@pytest.mark.parametrize("moment", MOMENTS, ids=lambda moment: moment.__name__)
def test_close_returns_and_ends_the_watch_every_time(moment, figures, returns):
    rng = random.Random(f"{SEED}-{moment.__name__}")
    clients = []
    try:
        for repetition in range(REPETITIONS):
            context = f"repetition {repetition}, seed {SEED}"
            moment(rng, clients, returns)
            # Over as close() returns: close() waited for the threads, it did not give up on them.
            assert clients[-1].wait(0), f"{context}: still watching"
            assert clients[-1].call.end_reason is EndReason.CLOSED, context
    finally:
        for client in clients:
            client.close(timeout=1)
    figures(faults_injected=REPETITIONS)
    assert not [thread.name for thread in threading.enumerate() if thread.name.startswith("livecall-reader")]


@pytest.mark.parametrize("moment", ["before start", "after the end"])
def test_close_outside_a_watch_returns_at_once(livecall_simulator, returns, moment):
    sim = livecall_simulator("hiya", join_timeout=0)
    client = _client(livecall.HiyaClient, **sim.client_kwargs())
    if moment == "after the end":
        client.run()
    returns(client.close)
    assert client.wait(0) is (moment == "after the end")
