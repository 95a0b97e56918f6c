"""Calling hook implementations and callbacks one at a time.

pluggy stops at the first implementation that raises; livecall must not: one
broken plugin may not cost the others, the callbacks or the stream an event.
So each implementation is called on its own, and a failure is logged with the
plugin's name and reported through ``livecall_error``.
"""

import logging
from time import perf_counter
from typing import Any, Callable, Optional, TypeVar

import pluggy

from .. import events
from .._isolation import hook_plan
from .._observe.histogram import Histogram
from .._observe.watch_counts import WatchCounts
from ..call import Call
from ..errors import LivecallError, PluginError
from ..events import Event, Reconnecting, Transcript
from ..plugins import bare_plugin_manager

__all__ = ["Dispatcher"]

log = logging.getLogger("livecall.dispatch")

E = TypeVar("E", bound=Event)
#: A callback registered for one event type: ``_callbacks_for`` only ever hands
#: it events of that type, which its own signature may require.
Callback = Callable[[Call, Any], Any]
#: One implementation as a watch calls it: its plugin's name, the function, and which of the
#: hook's arguments it takes, by their places in the hook's order (None: all, in that order).
Planned = tuple[str, Callable[..., Any], Optional[tuple[int, ...]]]

#: Events that also have a hook of their own.
_SPECIFIC_HOOKS = {Transcript: "livecall_transcript", Reconnecting: "livecall_reconnect"}
#: The hooks a watch calls (configure and the like belong to the command line).
_HOOK_NAMES = (
    "livecall_call_start",
    "livecall_event",
    "livecall_transcript",
    "livecall_reconnect",
    "livecall_error",
    "livecall_call_end",
)


def _picks(argnames: tuple[str, ...], hook_argnames: tuple[str, ...]) -> Optional[tuple[int, ...]]:
    """The places in the hook's arguments of those an implementation takes; None: all, in order."""
    picks = tuple(hook_argnames.index(name) for name in argnames)
    return None if picks == tuple(range(len(hook_argnames))) else picks


class Dispatcher:
    """Runs the hooks of one watch, and its callbacks, with failures isolated.

    Hooks go to the plugins of ``pm``, if any, and to those registered with
    this dispatcher's own ``register()``, which run as if registered last.  The
    call plan of every hook is worked out by ``prepare()`` as the watch
    starts, so a plugin the hooks cannot call (a wrapper) is refused there and
    then; plugins registered later take no part in this watch.  ``strict``
    keeps the first failure, for the client to re-raise.
    """

    def __init__(
        self,
        pm: Optional[pluggy.PluginManager],
        call: Call,
        strict: bool = False,
        counts: Optional[WatchCounts] = None,
    ):
        self.pm = pm
        self.call = call
        self.strict = strict
        #: What the watch counts: events by kind, failures, and (metrics on) each plugin's time.
        self.counts = counts if counts is not None else WatchCounts(call.provider, timed=False)
        #: Whether to time each plugin's hooks (metrics are on): read once per hook call, not per plugin.
        self.timed = self.counts.timed
        #: The OpenTelemetry tracer (``_observe.tracing.WatchTracer``) while tracing is on, and the
        #: span context of the connection the events come from, for their spans' links.
        self.tracer: Optional[Any] = None
        self.connection_span: Optional[Any] = None
        #: The watch's mailbox, whose ``timings`` are those of the thread dispatching it now.
        self.mailbox: Any = None
        #: The first plugin or callback failure, kept in strict mode only.
        self.first_failure: Optional[PluginError] = None
        self._own: Optional[pluggy.PluginManager] = (
            None  # made by the first register(): most clients need none
        )
        self._prepared = False
        #: Per hook some plugin implements, its implementations in calling order.
        self._plans: dict[str, list[Planned]] = {}
        self._callbacks: list[tuple[type[Event], Callback]] = []
        self._callbacks_by_type: dict[type, list[Callback]] = {}
        #: The plugin or callback running now, if any: for the watchdog's warning.
        self.running: Optional[str] = None

    def prepare(self) -> None:
        """Work out every hook's plan; raises ``PluginError`` for a plugin that cannot take part."""
        self._prepared = True
        managers = [pm for pm in (self.pm, self._own) if pm is not None]
        self._plans = {}
        for name in _HOOK_NAMES:
            steps = hook_plan(managers[0], name, *managers[1:]) if managers else []
            if steps:
                hook_argnames = tuple(getattr(managers[0].hook, name).spec.argnames)
                self._plans[name] = [
                    (plugin, function, _picks(argnames, hook_argnames))
                    for plugin, function, argnames in steps
                ]
        # The plans hold what the watch calls: the watch's own manager (some fifty objects for the
        # garbage collector to look at, per watch) is needed no more, since nothing registers now.
        self._own = None

    def register(self, plugin: object, name: Optional[str] = None) -> str:
        """Add ``plugin`` to this watch alone; returns the name it is registered under.

        pluggy's ``PluginValidationError`` for a hook livecall does not have,
        or one taking an argument its hook does not give.
        """
        self._refuse_once_prepared("register")
        if self._own is None:
            self._own = bare_plugin_manager(strict=True)  # refuses a misspelt hook, naming the nearest
        registered_as = self._own.register(plugin, name=name or self._readable_name(plugin))
        assert registered_as is not None  # no name of this manager is blocked
        try:
            self._own.check_pending()  # a misspelt hook would never be called: say so now
        except pluggy.PluginValidationError:
            self._own.unregister(plugin)
            raise
        return registered_as

    def _readable_name(self, plugin: object) -> str:
        """A name for a plugin given without one: a module's or a class's own name, else its class's.

        pluggy would name an object by its ``id()``, and the name is what the
        logs and the stuck dispatcher's warning show.  A second plugin of one
        class is told apart by a number.
        """
        base = getattr(plugin, "__name__", None) or type(plugin).__qualname__
        taken = {name for pm in (self.pm, self._own) if pm is not None for name, _ in pm.list_name_plugin()}
        name, number = base, 1
        while name in taken:
            number += 1
            name = f"{base}-{number}"
        return name

    def unregister(self, plugin: Optional[object] = None, name: Optional[str] = None) -> object:
        """Remove a plugin that ``register()`` added, by object or name; returns it."""
        self._refuse_once_prepared("unregister")
        registered = plugin
        if registered is None:
            if name is None:
                raise TypeError("unregister() needs the plugin or its name")
            registered = self._own.get_plugin(name) if self._own is not None else None
        if registered is None or self._own is None or not self._own.is_registered(registered):
            raise ValueError(f"no plugin {name or plugin!r} was registered with this client")
        self._own.unregister(registered)
        return registered

    def _refuse_once_prepared(self, method: str) -> None:
        if self._prepared:
            raise LivecallError(
                f"{method}() after start(): a watch's plugins are fixed when it starts; "
                "use on() and off() for callbacks, which take effect at once"
            )

    def on(self, event_type: type[Event], fn: Optional[Callback] = None) -> Any:
        """Add a callback, or return a decorator that does; returns ``fn``.

        Checked here and now, so that a wrong one fails its caller, not the watch.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(
                f"on() takes an event class, not {event_type!r} ({type(event_type).__name__}); "
                f"one of: {', '.join(_EVENT_CLASSES)}, or livecall.Event for all"
            )
        if fn is None:
            return lambda fn: self.on(event_type, fn)
        if not callable(fn):
            raise TypeError(f"on() takes a callable fn(call, event), not {fn!r} ({type(fn).__name__})")
        # Copy on write: the dispatcher thread may be reading the old ones.
        self._callbacks = self._callbacks + [(event_type, fn)]
        self._callbacks_by_type = {}
        return fn

    def off(self, event_type: type[Event], fn: Callback) -> None:
        """Remove ``fn`` as a callback of ``event_type``; ``ValueError`` if it is not one."""
        kept = [(cls, known) for cls, known in self._callbacks if not (cls is event_type and known == fn)]
        if len(kept) == len(self._callbacks):
            event_name = getattr(event_type, "__name__", repr(event_type))
            raise ValueError(f"{_callback_name(fn)} is not a callback of {event_name}")
        self._callbacks = kept
        self._callbacks_by_type = {}

    def call_hook(self, hook_name: str, *args: Any) -> None:
        """Every implementation of ``hook_name``, given ``args`` in the hook's order; failures isolated.

        The hot path: which arguments each implementation takes was worked out
        by ``prepare()``, so a hook costs one call per implementation, and a
        hook no plugin implements costs nothing.
        """
        plan = self._plans.get(hook_name)
        if not plan:
            return
        failures = []
        # Unless metrics are on no clock is read; then into this thread's histograms, by plugin.
        timed = self.mailbox.timings.hooks if self.timed else None
        began = 0.0
        for plugin_name, function, picks in plan:
            self.running = plugin_name
            if timed is not None:
                began = perf_counter()
            try:
                if picks is None:
                    function(*args)
                else:
                    function(*[args[i] for i in picks])
            except (Exception, SystemExit) as error:  # as in _isolation.call_each
                failures.append(PluginError(plugin_name, hook_name, error))
            if timed is not None:
                _time_of(timed, plugin_name).observe(perf_counter() - began)
        self.running = None
        for failure in failures:
            self._report(failure)

    def trace(self, tracer: Any) -> None:
        """Make a span of each event's hooks from now on (before the watch starts)."""
        self.tracer = tracer
        self.event = self._traced_event  # type: ignore[method-assign]

    def _traced_event(self, event: Event) -> None:
        assert self.tracer is not None
        with self.tracer.process(self.call.provider, self.call.id, event.kind, self.connection_span):
            Dispatcher.event(self, event)

    def event(self, event: Event) -> None:
        """Every hook and callback that wants this event, plugins first."""
        counted, cls = self.counts.events, type(event)
        counted[cls] = counted.get(cls, 0) + 1
        call = self.call
        self.call_hook("livecall_event", call, event)
        specific = _SPECIFIC_HOOKS.get(type(event))
        if specific is not None:
            self.call_hook(specific, call, event)
        timed = self.mailbox.timings.hooks if self.timed else None
        began = 0.0
        for fn in self._callbacks_for(type(event)):
            name = self.running = _callback_name(fn)
            if timed is not None:
                began = perf_counter()
            try:
                fn(call, event)
            except (Exception, SystemExit) as error:
                self._report(PluginError(name, "callback", error))
            if timed is not None:
                _time_of(timed, name).observe(perf_counter() - began)
            self.running = None

    def _callbacks_for(self, event_type: type) -> list[Callback]:
        cache = self._callbacks_by_type  # a cache that on() replaced is only written to, never read
        fns = cache.get(event_type)
        if fns is None:
            fns = cache[event_type] = [fn for cls, fn in self._callbacks if issubclass(event_type, cls)]
        return fns

    def _report(self, failure: PluginError) -> None:
        self.counts.plugin_failures += 1
        if self.tracer is not None:
            self.tracer.failed(failure)
        if self.strict and self.first_failure is None:
            self.first_failure = failure
        log.error("%s", failure, exc_info=failure.__cause__, extra={"call_id": self.call.id})
        if failure.hook == "livecall_error":
            return  # a failing error handler is logged, never reported to itself
        self.call_hook("livecall_error", self.call, failure)


#: What ``on()`` accepts, for its error message.
_EVENT_CLASSES = sorted(
    name
    for name in events.__all__
    if name != "Event"
    and isinstance(getattr(events, name), type)
    and issubclass(getattr(events, name), Event)
)


def _time_of(timed: dict[str, Histogram], name: str) -> Histogram:
    histogram = timed.get(name)
    if histogram is None:
        histogram = timed[name] = Histogram()
    return histogram


def _callback_name(fn: Callable[..., Any]) -> str:
    module = getattr(fn, "__module__", None) or "?"
    return f"{module}.{getattr(fn, '__qualname__', repr(fn))}"
