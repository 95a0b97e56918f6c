"""The command's signal handling, in this process: ``signal.raise_signal()`` from the main thread
runs the handler at once, at a point the test chooses."""

import argparse
import logging
import os
import signal
import threading

import pytest

from livecall import Config
from livecall.cli._signals import Interrupted, signals
from livecall.plugins import create_plugin_manager

#: A bound, never a pause: a stop action runs in a fraction of it.
TIMEOUT = 30.0
STOP_THREAD = "livecall-stop-actions"


def stop_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == STOP_THREAD]


class Ran:
    """A stop action that says whether it ran, and on which thread."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.thread = None

    def __call__(self) -> None:
        self.thread = threading.current_thread()
        self.done.set()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_runs_the_stop_action_on_another_thread_then_interrupts_on_the_way_out(signum):
    stop, went_on = Ran(), False
    with signals.handled(), pytest.raises(Interrupted) as interrupted:
        with signals.interruptible(), signals.stopping(stop):
            signal.raise_signal(signum)
            went_on = True
            assert stop.done.wait(TIMEOUT)
    assert went_on, "the handler raised while a stop action was registered"
    assert stop.thread is not None and stop.thread is not threading.main_thread()
    assert interrupted.value.status == 128 + signum


def test_without_a_stop_action_a_signal_raises_where_the_main_thread_is():
    went_on = False
    with signals.handled(), pytest.raises(Interrupted) as interrupted:
        with signals.interruptible():
            signal.raise_signal(signal.SIGTERM)
            went_on = True
    assert not went_on
    assert interrupted.value.status == 143


def test_a_stop_action_added_after_the_signal_runs_at_once():
    before, after = Ran(), Ran()
    with signals.handled(), pytest.raises(Interrupted):
        with signals.interruptible():
            with signals.stopping(before):
                signal.raise_signal(signal.SIGTERM)
                assert before.done.wait(TIMEOUT)
            with signals.stopping(after):
                assert after.done.is_set()
    assert after.thread is threading.main_thread()


def test_a_signal_while_deferred_is_raised_after_the_block():
    finished = False
    with signals.handled(), pytest.raises(Interrupted) as interrupted:
        with signals.interruptible():
            with signals.deferred():
                signal.raise_signal(signal.SIGHUP)
                finished = True
    assert finished
    assert interrupted.value.status == 129


def test_a_stop_action_that_raises_is_logged_and_the_next_still_runs(caplog):
    def broken() -> None:
        raise RuntimeError("cannot stop")

    after = Ran()
    with signals.handled(), pytest.raises(Interrupted):
        with signals.interruptible(), signals.stopping(broken), signals.stopping(after):
            signal.raise_signal(signal.SIGTERM)
            assert after.done.wait(TIMEOUT)
    assert after.thread is not threading.main_thread()
    [record] = [record for record in caplog.records if record.name == "livecall.cli"]
    assert record.levelno == logging.ERROR and "cannot stop" in str(record.exc_info[1])


def wakeup_fd() -> int:
    fd = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(fd)
    return fd


def test_the_stop_thread_ends_with_the_command_and_the_handlers_are_restored():
    previous, previous_fd = signal.getsignal(signal.SIGTERM), wakeup_fd()
    with signals.handled():
        [thread] = stop_threads()
        assert thread.daemon
        assert wakeup_fd() not in (-1, previous_fd)
    assert not thread.is_alive()
    assert signal.getsignal(signal.SIGTERM) is previous and wakeup_fd() == previous_fd


def test_the_stop_thread_ends_with_the_command_after_a_signal_too():
    with signals.handled(), pytest.raises(Interrupted):
        [thread] = stop_threads()
        with signals.interruptible():
            signal.raise_signal(signal.SIGINT)
    assert not thread.is_alive()


def test_outside_the_command_a_stop_action_is_never_run():
    stop = Ran()
    with signals.stopping(stop):
        pass
    assert not stop.done.is_set()


def test_a_signal_while_the_main_thread_holds_a_lock_neither_raises_nor_takes_it():
    """The hang this guards against: ``with event._cond:`` in ``Event.wait`` had taken the lock
    when the handler raised, before the ``with`` block owned it; the lock stayed taken, and the
    thread that set the event later blocked forever.  The handler runs here at that very point."""
    lock = threading.Lock()
    stopped = threading.Event()
    took_it = []

    def stop() -> None:  # needs the lock the main thread holds when the signal comes
        took_it.append(lock.acquire(timeout=TIMEOUT))
        lock.release()
        stopped.set()

    released = False
    with signals.handled(), pytest.raises(Interrupted):
        with signals.interruptible(), signals.stopping(stop):
            lock.acquire()  # as Condition.__enter__ has just done
            signal.raise_signal(signal.SIGTERM)  # where the eval breaker runs the handler
            lock.release()
            released = True
            assert stopped.wait(TIMEOUT)
    assert released, "the handler raised with the lock taken"
    assert took_it == [True], "the stop action ran in the handler, on the thread holding the lock"


def test_a_signal_only_another_thread_takes_still_stops_the_command():
    """Python's handler runs on the main thread, and not before it wakes: a signal that comes
    while it sleeps in a lock (here: one it cannot take, so another thread does) must reach the
    stop actions through the wake-up file descriptor, which Python's C-level handler writes."""
    go, stopped = threading.Event(), threading.Event()

    def send() -> None:
        if go.wait(TIMEOUT):
            os.kill(os.getpid(), signal.SIGTERM)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()  # before the mask: it must be free to take the signal
    woke = False
    with signals.handled(), pytest.raises(Interrupted) as interrupted:
        with signals.interruptible(), signals.stopping(stopped.set):
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
            try:
                go.set()
                woke = stopped.wait(TIMEOUT)
            finally:
                signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
    sender.join(TIMEOUT)
    assert woke, "the stop action did not run while the main thread slept"
    assert interrupted.value.status == 143


def test_a_plugin_command_says_how_to_stop_it_through_its_config():
    config = Config(argparse.Namespace(), create_plugin_manager(autoload=False), stopping=signals.stopping)
    stop, went_on = Ran(), False
    with signals.handled(), pytest.raises(Interrupted) as interrupted:
        with signals.interruptible(), config.stopping(stop):
            signal.raise_signal(signal.SIGTERM)
            went_on = True
            assert stop.done.wait(TIMEOUT)
    assert went_on and stop.thread is not threading.main_thread()
    assert interrupted.value.status == 143


def test_outside_the_command_config_stopping_just_runs_the_block():
    config = Config(argparse.Namespace(), create_plugin_manager(autoload=False))
    stop = Ran()
    with config.stopping(stop):
        ran = True
    assert ran and not stop.done.is_set()
    assert stop_threads() == []
