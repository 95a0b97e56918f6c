"""The client's API for library users: on()/off(), register(), strict mode, events()."""

import threading

import pluggy
import pytest

import livecall
from livecall import EndReason, PluginError, Transcript
from livecall.plugins import get_plugin_manager
from livecall.testing import Simulator, wait_until

from .conftest import FAST, HANG_GUARD, Recorder


class Exploding:
    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        raise RuntimeError("bang")


# --- on() and off() ------------------------------------------------------------


@pytest.mark.parametrize("wrong", ["transcript", (Transcript,), Transcript("hi", "user"), int, None])
def test_on_refuses_what_is_not_an_event_class_at_once_and_names_the_classes(wrong):
    client = livecall.PhonicClient("conv_1", api_key="key-1", plugins=[])
    with pytest.raises(TypeError) as refused:
        client.on(wrong, lambda call, event: None)
    message = str(refused.value)
    assert repr(wrong) in message and type(wrong).__name__ in message
    assert "Transcript" in message and "ConversationUpdated" in message and "livecall.Event" in message
    with pytest.raises(TypeError, match="event class"):
        client.on(wrong)  # the decorator form is checked when called, not when applied


def test_on_refuses_a_callback_that_cannot_be_called():
    client = livecall.PhonicClient("conv_1", api_key="key-1", plugins=[])
    with pytest.raises(TypeError, match=r"callable fn\(call, event\), not 'print' \(str\)"):
        client.on(Transcript, "print")


def test_a_refused_on_leaves_the_watch_whole(plugin_manager, recorder):
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        with pytest.raises(TypeError):
            client.on("transcript", lambda call, event: None)
        client.run()
    assert recorder.of("transcript") and not recorder.of("error")
    assert client.call.end_reason is EndReason.ENDED


def test_off_removes_a_callback_from_the_next_event_on(plugin_manager):
    once, every = [], []
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)

        @client.on(Transcript)
        def first_line_only(call, line):
            once.append(line)
            client.off(Transcript, first_line_only)  # from inside itself, on the dispatcher thread

        client.on(Transcript, lambda call, line: every.append(line))
        client.run()
    assert len(every) > 1 and once == every[:1]
    with pytest.raises(ValueError, match="first_line_only is not a callback of Transcript"):
        client.off(Transcript, first_line_only)


# --- register(), unregister(), plugins=[] -----------------------------------------


def test_plugins_empty_means_no_plugin_not_the_installed_ones():
    installed = Recorder()
    get_plugin_manager().register(installed, name="installed-recorder")
    try:
        with Simulator("phonic", "conversation") as sim:
            livecall.PhonicClient(**sim.client_kwargs(), plugins=[]).run()
            livecall.PhonicClient(**sim.client_kwargs()).run()
    finally:
        get_plugin_manager().unregister(installed)
    assert installed.of("call_start") and len(installed.of("call_end")) == 1, "the second client only"


def test_plugins_add_to_a_given_plugin_manager(plugin_manager, recorder):
    own = Recorder()
    with Simulator("phonic", "conversation") as sim:
        livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager, plugins=[own]).run()
    assert own.events() and own.events() == recorder.events()


def test_register_adds_a_plugin_to_one_client_before_start(plugin_manager, recorder):
    own, removed = Recorder(), Recorder()
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        assert client.register(own, name="own") == "own"
        client.register(removed)
        assert client.unregister(removed) is removed
        with pytest.raises(ValueError, match="no plugin"):
            client.unregister(name="never-registered")
        client.run()
        with pytest.raises(livecall.LivecallError, match=r"register\(\) after start\(\)"):
            client.register(Recorder())
        with pytest.raises(livecall.LivecallError, match=r"unregister\(\) after start\(\)"):
            client.unregister(own)
    assert own.events() and own.events() == recorder.events(), "alongside the manager's plugins"
    assert not removed.calls
    assert plugin_manager.get_plugin("own") is None, "the manager itself is left alone"


def test_register_refuses_a_plugin_with_a_misspelt_hook_and_keeps_the_client_usable():
    class Misspelt:
        @livecall.hookimpl
        def livecall_transcrpt(self, call, transcript):
            pass

    client = livecall.PhonicClient("conv_1", api_key="key-1", plugins=[])
    with pytest.raises(pluggy.PluginValidationError, match="livecall_transcrpt"):
        client.register(Misspelt(), name="misspelt")
    client.register(Recorder(), name="misspelt")  # the name is free again


def test_a_registered_plugin_runs_as_if_registered_last(plugin_manager):
    order = []

    class Named:
        def __init__(self, name):
            self.name = name

        @livecall.hookimpl
        def livecall_call_start(self, call):
            order.append(self.name)

    class First(Named):
        @livecall.hookimpl(tryfirst=True)
        def livecall_call_start(self, call):
            order.append(self.name)

    plugin_manager.register(Named("manager"))
    plugin_manager.register(First("manager-tryfirst"))
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        client.register(Named("client"))
        client.run()
    assert order == ["manager-tryfirst", "client", "manager"]


# --- strict mode -----------------------------------------------------------------


def test_strict_mode_reraises_the_first_callback_error_once_the_call_is_over(plugin_manager, recorder):
    def broken(call, line):
        raise ValueError(f"cannot handle {line.text!r}")

    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager, strict=True)
        client.on(Transcript, broken)
        with pytest.raises(PluginError, match="broken") as raised:
            client.run()
    first = recorder.events(Transcript)[0]
    assert isinstance(raised.value.__cause__, ValueError) and first.text in str(raised.value.__cause__)
    assert client.call.end_reason is EndReason.ENDED, "the watch itself went on to the end"


def test_strict_mode_reraises_a_plugin_error_from_wait(plugin_manager):
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugins=[Exploding()], strict=True)
        client.start()
        with pytest.raises(PluginError, match="livecall_transcript: RuntimeError: bang"):
            client.wait(timeout=30)
        client.close()


def test_without_strict_mode_errors_are_only_reported(plugin_manager):
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugins=[Exploding()])
        client.run()
    assert client.call.end_reason is EndReason.ENDED


# --- events() --------------------------------------------------------------------


def test_events_yields_every_event_in_order_and_starts_the_watch(plugin_manager, recorder):
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        pulled = [event for event in client.events()]
    assert pulled and pulled == recorder.events()
    assert isinstance(pulled[-1], livecall.ConversationEnded)
    assert client.call.end_reason is EndReason.ENDED


def test_events_may_come_before_a_start_of_ones_own(plugin_manager, recorder):
    with Simulator("hiya", "screening", join_timeout=0) as sim:
        client = livecall.HiyaClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        stream = client.events()
        client.start()
        pulled = list(stream)
    assert pulled == recorder.events() and isinstance(pulled[-1], livecall.CallEnded)


def test_breaking_out_of_events_closes_the_watch(plugin_manager, recorder):
    with Simulator("hiya", "flood", flood_count=2000) as sim:
        client = livecall.HiyaClient(**sim.client_kwargs(), plugin_manager=plugin_manager, **FAST)
        for event in client.events(buffer_size=2):
            if isinstance(event, Transcript):
                break
        assert recorder.ended.wait(10)
    assert client.call.end_reason is EndReason.CLOSED
    assert len(recorder.events(Transcript)) < 2000


def test_a_slow_loop_holds_the_watch_up_and_loses_nothing(plugin_manager, recorder):
    count, queue_size = 500, 8
    with Simulator("hiya", "flood", flood_count=count) as sim:
        client = livecall.HiyaClient(
            **sim.client_kwargs(), plugin_manager=plugin_manager, **{**FAST, "queue_size": queue_size}
        )
        stream = client.events(buffer_size=4)
        first = next(stream)
        assert wait_until(lambda: client.stats.queued >= queue_size), "the reading waits on the loop"
        rest = list(stream)
        connections = len(sim.connections)
    lines = [event.text for event in [first, *rest] if isinstance(event, Transcript)]
    assert lines == [f"flood message {n}" for n in range(1, count + 1)]
    # Reading stops once the mailbox is full; what one wake-up had read already (at most
    # 256 KiB: here, maybe the whole flood) may go past it.
    assert client.stats.queue_high_water >= queue_size and connections == 1


def test_events_raises_the_watch_error_like_wait(plugin_manager):
    with Simulator("phonic", "auth") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager, **FAST)
        with pytest.raises(livecall.AuthenticationError):
            for _ in client.events():
                pass


def test_a_stream_of_events_dropped_unread_holds_nothing_up(plugin_manager, recorder):
    with Simulator("hiya", "flood", flood_count=200) as sim:
        client = livecall.HiyaClient(**sim.client_kwargs(), plugin_manager=plugin_manager, **FAST)
        client.events(buffer_size=2)  # never iterated, and garbage at once
        client.start()
        assert client.wait(timeout=30), "the watch went on to the end"
    assert len(recorder.events(Transcript)) == 200


def test_events_is_for_before_start_and_once(plugin_manager):
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        stream = client.events()
        with pytest.raises(livecall.LivecallError, match="called already"):
            client.events()
        stream.close()
        started = livecall.PhonicClient(**sim.client_kwargs(), plugin_manager=plugin_manager)
        with started:
            with pytest.raises(livecall.LivecallError, match=r"events\(\) after start\(\)"):
                started.events()


def test_events_refuses_a_buffer_of_nothing():
    client = livecall.PhonicClient("conv_1", api_key="key-1", plugins=[])
    with pytest.raises(ValueError, match="buffer_size"):
        client.events(buffer_size=0)


# --- numbers: finite and in range, whatever their source ------------------------------


@pytest.mark.parametrize(
    "argument, value",
    [
        ("ping_interval", float("nan")),
        ("ping_timeout", float("nan")),
        ("ping_timeout", float("inf")),
        ("ping_interval", 1e300),
        ("connect_timeout", float("nan")),
        ("close_timeout", -1.0),
        ("stable_after", float("nan")),
        ("backoff", livecall.Backoff(float("nan"), 1.0)),
        ("backoff", livecall.Backoff(0.5, float("inf"))),
        ("max_retries", 2.5),
        ("max_retries", True),
        ("queue_size", float("nan")),
        ("queue_bytes", 0),
        ("max_message_size", float("inf")),
    ],
)
def test_the_constructor_refuses_a_number_that_is_not_finite_or_in_range(argument, value):
    """NaN passes every ``<=`` check: a NaN ping_interval used to reach the hub's timer heap."""
    name = "backoff." if argument == "backoff" else argument
    with pytest.raises(livecall.ConfigurationError, match=name):
        livecall.PhonicClient("conv_1", api_key="key-1", plugins=[], **{argument: value})


def test_the_constructor_takes_the_edges_of_the_ranges():
    client = livecall.PhonicClient(
        "conv_1",
        api_key="key-1",
        plugins=[],
        ping_interval=None,
        max_retries=0,
        stable_after=0,
        backoff=livecall.Backoff(0, 0),
        ping_timeout=7 * 24 * 3600,
    )
    assert client.max_retries == 0


@pytest.mark.parametrize(
    "argument, value",
    [
        ("stuck_after", float("nan")),
        ("stuck_after", float("inf")),
        ("dispatchers", float("nan")),
        ("connectors", 1.5),
        ("max_dispatchers", float("nan")),
        ("batch_window", float("nan")),
    ],
)
def test_configure_hub_refuses_a_number_that_is_not_finite_or_in_range(argument, value):
    with pytest.raises(livecall.ConfigurationError, match=argument):
        livecall.configure_hub(**{argument: value})


# --- plugins given as objects are named readably ------------------------------------------


class Blocking:
    """Holds the first transcript line until released, saying when it got there."""

    def __init__(self):
        self.entered, self.release = threading.Event(), threading.Event()

    @livecall.hookimpl
    def livecall_transcript(self, call, transcript):
        self.entered.set()
        self.release.wait(HANG_GUARD)


def test_a_plugin_object_is_named_by_its_class_and_told_apart_from_another_of_it():
    first, second = Blocking(), Blocking()
    second.release.set()
    with Simulator("phonic", "conversation") as sim:
        client = livecall.PhonicClient(**sim.client_kwargs(), plugins=[first, second], **FAST)
        assert client.register(Recorder()) == "Recorder"
        client.start()
        try:
            assert first.entered.wait(HANG_GUARD)
            assert client._dispatcher.running == "Blocking", "what the stuck dispatcher's warning shows"
            assert "plugin Blocking" in client._describe()
        finally:
            first.release.set()
        client.wait(HANG_GUARD)
    assert second.entered.is_set()
    plan = client._dispatcher._plans["livecall_transcript"]
    named = {name: function.__self__ for name, function, _ in plan}
    assert named["Blocking"] is first and named["Blocking-2"] is second
