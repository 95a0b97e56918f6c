"""The helpers ``livecall.testing`` gives plugin authors beside the simulator."""

import pytest

import livecall
from livecall.testing import Exploding, configure


class Greeter:
    """A plugin with an option, a per-run object and an unconfigure hook, noting its steps."""

    def __init__(self):
        self.steps = []

    @livecall.hookimpl
    def livecall_addoption(self, parser):
        parser.add_argument("--greeting", default="hello")

    @livecall.hookimpl
    def livecall_configure(self, config):
        self.steps.append(("configure", config.options.greeting))
        config.add_cleanup(lambda: self.steps.append(("cleanup",)))

    @livecall.hookimpl
    def livecall_unconfigure(self, config):
        self.steps.append(("unconfigure",))


def test_configure_parses_the_plugins_options_and_ends_the_run_as_the_command_does():
    greeter = Greeter()
    config = configure(greeter, "--greeting", "hi", name="greeter")
    assert config.options.greeting == "hi"
    assert config.plugin_manager.get_plugin("greeter") is greeter
    assert not config.plugin_manager.get_plugin("livecall_csv"), "installed plugins stay out"
    config.close()
    assert greeter.steps == [("configure", "hi"), ("unconfigure",), ("cleanup",)]
    assert config.failures == []


def test_configure_refuses_an_option_the_plugin_does_not_add():
    with pytest.raises(SystemExit):
        configure(Greeter(), "--farewell", "bye")


def test_exploding_raises_from_the_hooks_it_is_given_only():
    call, event = livecall.Call(provider="hiya", id="call_1"), livecall.Transcript("hi", "user")
    both, events_only = Exploding(), Exploding("livecall_event")
    for plugin in (both, events_only):
        with pytest.raises(RuntimeError, match="boom"):
            plugin.livecall_event(call=call, event=event)
    with pytest.raises(RuntimeError, match="boom"):
        both.livecall_transcript(call=call, transcript=event)
    assert events_only.livecall_transcript(call=call, transcript=event) is None
    with pytest.raises(ValueError, match="livecall_call_end"):
        Exploding("livecall_call_end")
