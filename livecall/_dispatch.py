"""Calling hook implementations and callbacks one at a time.

pluggy stops at the first implementation that raises; livecall must not: one
broken plugin may not cost the others, the callbacks or the stream an event.
So each implementation is called on its own, and a failure is logged with the
plugin's name and reported through ``livecall_error``.
"""

import logging
from typing import Any, Callable, Optional

import pluggy

from .call import Call
from .errors import PluginError
from .events import Event, Reconnecting, Transcript

__all__ = ["Dispatcher"]

log = logging.getLogger("livecall.dispatch")

Callback = Callable[[Call, Event], Any]
_Step = tuple[str, Callable[..., Any], tuple[str, ...]]

#: Events that also have a hook of their own, and that hook's argument name.
_SPECIFIC_HOOKS = {
    Transcript: ("livecall_transcript", "transcript"),
    Reconnecting: ("livecall_reconnect", "reconnecting"),
}
#: The hooks a watch calls (configure and the like belong to the command line).
_HOOK_NAMES = (
    "livecall_call_start",
    "livecall_event",
    "livecall_transcript",
    "livecall_reconnect",
    "livecall_error",
    "livecall_call_end",
)


def hook_plan(pm: pluggy.PluginManager, hook_name: str) -> list[_Step]:
    """The implementations of a hook in the order pluggy itself would call them."""
    steps = []
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            raise PluginError(impl.plugin_name, hook_name, TypeError("livecall hooks cannot be wrappers"))
        steps.append((impl.plugin_name, impl.function, tuple(impl.argnames)))
    return steps


def call_each(
    steps: list[_Step],
    hook_name: str,
    kwargs: dict[str, Any],
    running: Optional[Callable[[Optional[str]], None]] = None,
) -> list[PluginError]:
    """Call every step, whatever the others do; one ``PluginError`` per failure.

    ``running`` hears each plugin's name as it starts, and None at the end,
    so a watchdog can name a plugin that does not return.
    """
    failures = []
    for plugin_name, function, argnames in steps:
        if running is not None:
            running(plugin_name)
        try:
            function(*[kwargs[name] for name in argnames])
        except (Exception, SystemExit) as error:  # sys.exit() in a hook ends nothing either
            failures.append(PluginError(plugin_name, hook_name, error))
    if running is not None:
        running(None)
    return failures


class Dispatcher:
    """Runs the hooks of one watch, and its callbacks, with failures isolated.

    The call plan of every hook is worked out by ``prepare()`` as the watch
    starts, so a plugin the hooks cannot call (a wrapper) is refused there and
    then; plugins registered later take no part in this watch.
    """

    def __init__(self, pm: pluggy.PluginManager, call: Call):
        self.pm = pm
        self.call = call
        self._plans: dict[str, list[_Step]] = {}
        self._callbacks: list[tuple[type[Event], Callback]] = []
        self._callbacks_by_type: dict[type, list[Callback]] = {}
        #: The plugin or callback running now, if any: for the watchdog's warning.
        self.running: Optional[str] = None

    def prepare(self) -> None:
        """Work out every hook's plan; raises ``PluginError`` for a plugin that cannot take part."""
        self._plans = {name: hook_plan(self.pm, name) for name in _HOOK_NAMES}

    def on(self, event_type: type[Event], fn: Callback) -> None:
        # Copy on write: the dispatcher thread may be reading the old ones.
        self._callbacks = self._callbacks + [(event_type, fn)]
        self._callbacks_by_type = {}

    def call_hook(self, hook_name: str, **kwargs: Any) -> None:
        for failure in call_each(self._plans[hook_name], hook_name, kwargs, self._note_running):
            self._report(failure)

    def event(self, event: Event) -> None:
        """Every hook and callback that wants this event, plugins first."""
        call = self.call
        self.call_hook("livecall_event", call=call, event=event)
        specific = _SPECIFIC_HOOKS.get(type(event))
        if specific is not None:
            hook_name, argname = specific
            self.call_hook(hook_name, call=call, **{argname: event})
        for fn in self._callbacks_for(type(event)):
            self.running = _callback_name(fn)
            try:
                fn(call, event)
            except (Exception, SystemExit) as error:
                self._report(PluginError(_callback_name(fn), "callback", error))
            self.running = None

    def _note_running(self, name: Optional[str]) -> None:
        self.running = name

    def _callbacks_for(self, event_type: type) -> list[Callback]:
        cache = self._callbacks_by_type  # a cache that on() replaced is only written to, never read
        fns = cache.get(event_type)
        if fns is None:
            fns = cache[event_type] = [fn for cls, fn in self._callbacks if issubclass(event_type, cls)]
        return fns

    def _report(self, failure: PluginError) -> None:
        log.error("%s", failure, exc_info=failure.__cause__, extra={"call_id": self.call.id})
        if failure.hook == "livecall_error":
            return  # a failing error handler is logged, never reported to itself
        self.call_hook("livecall_error", call=self.call, error=failure)


def _callback_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
