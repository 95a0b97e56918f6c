"""Calling hook implementations and callbacks one at a time.

pluggy stops at the first implementation that raises; livecall must not: one
broken plugin may not cost the others, the callbacks or the stream an event.
So each implementation is called on its own, and a failure is logged with the
plugin's name and reported through ``livecall_error``.
"""
import logging
from typing import Any, Callable, Dict, List, Tuple, Type

import pluggy

from .call import Call
from .errors import PluginError
from .events import Event, Reconnecting, Transcript

__all__ = ["Dispatcher"]

log = logging.getLogger("livecall.dispatch")

Callback = Callable[[Call, Event], Any]
_Step = Tuple[str, Callable[..., Any], Tuple[str, ...]]

#: Events that also have a hook of their own, and that hook's argument name.
_SPECIFIC_HOOKS = {
    Transcript: ("livecall_transcript", "transcript"),
    Reconnecting: ("livecall_reconnect", "reconnecting"),
}


def _plan(pm: pluggy.PluginManager, hook_name: str) -> List[_Step]:
    """The implementations of a hook in the order pluggy itself would call them."""
    steps = []
    for impl in reversed(getattr(pm.hook, hook_name).get_hookimpls()):
        if getattr(impl, "hookwrapper", False) or getattr(impl, "wrapper", False):
            raise PluginError(
                impl.plugin_name, hook_name, TypeError("livecall hooks cannot be wrappers")
            )
        steps.append((impl.plugin_name, impl.function, tuple(impl.argnames)))
    return steps


class Dispatcher:
    """Runs the hooks of one watch, and its callbacks, with failures isolated.

    The call plan of each hook is worked out once; ``refresh()`` redoes it
    after plugins were (un)registered.
    """

    def __init__(self, pm: pluggy.PluginManager, call: Call):
        self.pm = pm
        self.call = call
        self._plans: Dict[str, List[_Step]] = {}
        self._callbacks: List[Tuple[Type[Event], Callback]] = []
        self._callbacks_by_type: Dict[type, List[Callback]] = {}

    def refresh(self) -> None:
        self._plans.clear()

    def on(self, event_type: Type[Event], fn: Callback) -> None:
        self._callbacks.append((event_type, fn))
        self._callbacks_by_type.clear()

    def call_hook(self, hook_name: str, **kwargs: Any) -> None:
        plan = self._plans.get(hook_name)
        if plan is None:
            plan = self._plans[hook_name] = _plan(self.pm, hook_name)
        for plugin_name, function, argnames in plan:
            try:
                function(*[kwargs[name] for name in argnames])
            except (Exception, SystemExit) as error:  # sys.exit() in a hook ends nothing either
                self._report(plugin_name, hook_name, error)

    def event(self, event: Event) -> None:
        """Every hook and callback that wants this event, plugins first."""
        call = self.call
        self.call_hook("livecall_event", call=call, event=event)
        specific = _SPECIFIC_HOOKS.get(type(event))
        if specific is not None:
            hook_name, argname = specific
            self.call_hook(hook_name, call=call, **{argname: event})
        for fn in self._callbacks_for(type(event)):
            try:
                fn(call, event)
            except Exception as error:
                self._report(_callback_name(fn), "callback", error)

    def _callbacks_for(self, event_type: type) -> List[Callback]:
        fns = self._callbacks_by_type.get(event_type)
        if fns is None:
            fns = [fn for cls, fn in self._callbacks if issubclass(event_type, cls)]
            self._callbacks_by_type[event_type] = fns
        return fns

    def _report(self, plugin_name: str, hook_name: str, error: BaseException) -> None:
        failure = PluginError(plugin_name, hook_name, error)
        log.error("%s", failure, exc_info=error, extra={"call_id": self.call.id})
        if hook_name == "livecall_error":
            return  # a failing error handler is logged, never reported to itself
        self.call_hook("livecall_error", call=self.call, error=failure)


def _callback_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
